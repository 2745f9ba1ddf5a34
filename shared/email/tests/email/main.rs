//! Integration tests of pai-email against the real corpus and bad input.

mod classification;
mod corpus;
mod corpus_parse;
mod dump;
