//! One module per subcommand.

pub mod keygen;
pub mod new;
pub mod package;
pub mod run;
pub mod validate;
