//! Tracker payloads → normalised entries. One file per tracker; each is a
//! pure function of the payload bytes.
