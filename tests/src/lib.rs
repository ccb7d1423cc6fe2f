//! Fakes of the external APIs and helpers shared by the integration tests.
