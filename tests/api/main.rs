//! innkeeper's integration tests: one binary that drives the real HTTP API of a real
//! server against real PostgreSQL and Redis. See `helpers` for how they are started.

mod abuse;
mod auth;
mod catalog;
mod cluster;
mod demand;
mod devservices;
mod embedded;
mod errors;
mod faults;
mod helpers;
mod inventory;
mod jobs;
mod observability;
mod ops;
mod reservations;
mod restrictions;
mod shards;
mod webhooks;
