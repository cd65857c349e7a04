//! innkeeper: hotel reservations for the moment a popular hotel opens its peak-season
//! dates and thousands of guests book the same nights at once.
//!
//! The story of one booking, module by module:
//!
//! - [`http`] parses each request into [`domain`] types, authorizes it, and maps every
//!   failure to problem+json through one error type.
//! - [`inventory`] holds the Redis side: per-night keys and the Lua scripts that pre-deduct
//!   rooms, turning sold-out traffic away before it reaches the database.
//! - [`store`] is PostgreSQL, the source of truth, which re-checks and commits.
//! - [`app`] builds a process from a [`config::Config`]; [`devservices`] starts private
//!   PostgreSQL and Redis servers for the embedded default and the tests.
//! - [`clock`] is the injectable time source; [`telemetry`] sets up logs and metrics.

pub mod app;
pub mod booking;
pub mod clock;
pub mod config;
pub mod demo;
pub mod devservices;
pub mod domain;
pub mod http;
pub mod inventory;
pub mod jobs;
pub mod store;
pub mod telemetry;
