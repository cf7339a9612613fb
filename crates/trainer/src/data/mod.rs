//! Image classification data (being written).
