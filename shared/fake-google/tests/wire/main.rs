//! The fake's wire format, through HTTP as a client sees it.

mod control;
mod gmail;
mod helpers;
mod oauth;
