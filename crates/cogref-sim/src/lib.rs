//! # cogref-sim
//!
//! (docs below)

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![allow(clippy::print_stderr)]

pub mod adapters;
pub mod capture;
pub(crate) mod check;
pub mod cognito;
pub mod config;
pub mod conformance;
pub mod executor;
pub mod model;
pub mod rng;
pub mod run;
pub mod shared;
pub mod world;
