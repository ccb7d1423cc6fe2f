//! Application services: the workflows the console pages, the JSON API and
//! the CLI share, each taking the ports and the actor and returning domain
//! errors, so that no entry point does the same thing by another path.
//!
//! - [`approvals`]: approve or reject time awaiting approval;
//! - [`entries`]: redrive entries and dead letters, discard an entry, each
//!   audited under the actor;
//! - [`holding`]: route open entries to the holding account;
//! - [`recheck`]: re-evaluate the held entries a mapping change can release
//!   (in this process, or queued for the sync function on a deployed stack).
//!
//! The mapping change review itself is [`crate::review::MappingReview`].

pub mod approvals;
pub mod entries;
pub mod holding;
pub mod recheck;
