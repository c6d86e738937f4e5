//! One module per subcommand.

pub mod key;
pub mod keygen;
pub mod login;
pub mod new;
pub mod owner;
pub mod package;
pub mod publish;
pub mod run;
pub mod tag;
pub mod validate;
pub mod yank;
