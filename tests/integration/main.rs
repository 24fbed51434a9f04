//! Integration tests against moto's server through the real AWS SDK. Each test creates
//! its own tables and queues from `template.yaml`.

mod chaos;
mod demo;
mod detector;
mod gmail;
mod hostile;
mod isolation;
mod linkedin;
mod provider_server;
mod recovery;
mod samples;
mod secrets;
mod whatsapp;
