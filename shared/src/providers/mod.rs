//! Provider-specific verification, parsing and normalization. Everything after
//! normalization (routing, storage, queues) is shared in `crate::ingest`.

pub mod api;
pub mod gmail;
pub mod linkedin;
pub mod whatsapp;
