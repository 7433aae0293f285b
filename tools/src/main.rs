//! The `vladdb` command-line tool.
fn main() {}
