//! The `pai` command's library half: starting services, migrations,
//! administration and diagnostics, shared by the binary and the tests.

pub mod admin;
pub mod backup;
pub mod doctor;
pub mod export;
pub mod import;
pub mod old_install;
pub mod stack;
