//! File readers (in progress).
