//! Tailor's cucumber `World` and step definitions: each step is a thin call
//! into `harness`.
