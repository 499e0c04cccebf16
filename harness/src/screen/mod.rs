pub mod matcher;
pub mod reference;
pub mod waiting;
