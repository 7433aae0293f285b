//! vladdb-codecs: the math of vladdb, with no I/O.
