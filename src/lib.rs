//! zkrs
