//! One module per subcommand.

pub mod info;
pub mod install;
pub mod key;
pub mod keygen;
pub mod list;
pub mod login;
pub mod new;
pub mod owner;
pub mod package;
pub mod publish;
pub mod remove;
pub mod run;
pub mod search;
pub mod tag;
pub mod update;
pub mod validate;
pub mod yank;
