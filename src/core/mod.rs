//! Core types every stage shares: the telescope's station table (and, below, the group's
//! visibilities, the image centre and the telescope's constants). A leaf: it imports only
//! `primitives`.

pub mod stations;
