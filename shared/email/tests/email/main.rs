//! Integration tests of pai-email against the real corpus and bad input.

mod bad_input;
mod classification;
mod corpus;
mod corpus_parse;
mod dump;
mod fuzz;
