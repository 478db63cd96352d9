//! Multi-lane MD5 (in progress).
