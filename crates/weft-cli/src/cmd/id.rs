//! `weft id new|show`.

use weft::Keypair;

use crate::cli::IdCommand;
use crate::error::CliError;

pub(crate) fn run(cmd: IdCommand) -> Result<(), CliError> {
    match cmd {
        IdCommand::New { out } => {
            let key = Keypair::generate()?;
            key.save(&out)?;
            println!("{}", key.did());
        }
        IdCommand::Show { key } => println!("{}", Keypair::load(&key)?.did()),
    }
    Ok(())
}
