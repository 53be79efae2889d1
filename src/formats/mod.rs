//! Annotation formats read and written by veritune.
pub mod coco;
