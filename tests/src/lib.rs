//! Helpers shared by the integration tests, and fakes of the external APIs.

pub mod kit;
