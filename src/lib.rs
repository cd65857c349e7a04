//! innkeeper: hotel reservations for the moment a popular hotel opens its peak-season
//! dates and thousands of guests book the same nights at once.
//!
//! The story of one booking, layer by layer, each using only the layers below it (checked
//! by `tests/layers.rs`):
//!
//! - [`app`] builds a process from a [`config::Config`]: the stores, the services, the
//!   HTTP server and the background jobs.
//! - [`http`] parses each request into [`domain`] types, authorizes it, calls one service
//!   and maps its answer to JSON or problem+json.
//! - [`jobs`] run in the background: the reconciler (Redis repaired from Postgres), the hold
//!   sweeper and the archiver.
//! - [`booking`] is where the cache and the source of truth meet: the booking flow
//!   (pre-deduct in Redis, commit in Postgres, compensate), the reservation lifecycle,
//!   availability, the catalog writes that must reach both stores, and their health.
//! - [`inventory`] is the Redis side: per-night keys and the Lua scripts that pre-deduct
//!   rooms, turning sold-out traffic away before it reaches the database.
//! - [`store`] is PostgreSQL, the source of truth, which re-checks and commits.
//! - [`domain`] holds the hotel's words as types: a stay, a reservation and its status, a
//!   night, the overbooking ratio, who is asking.
//!
//! Beside them: [`config`] (every setting), [`clock`] (the injectable time source),
//! [`telemetry`] (logs and the catalogue of metrics), [`devservices`] (private PostgreSQL
//! and Redis servers for the embedded default and the tests) and [`demo`] (a hotel to try
//! the API on).

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
