//! `weft dht`: asking a node about its DHT.

use serde_json::json;
use weft::Node;

use crate::cli::DhtCommand;
use crate::error::CliError;

pub(crate) async fn run(cmd: DhtCommand) -> Result<(), CliError> {
    let connect = match &cmd {
        DhtCommand::Stats { connect } | DhtCommand::Lookup { connect, .. } => connect.clone(),
    };
    weft_net::parse_addr(&connect).map_err(|e| CliError::Usage(format!("--connect: {e}")))?;
    // A client of the node asked: it joins no realm, provides nothing and is dialed by nobody.
    let node = Node::builder().connect(connect.clone()).start().await?;
    let asked = ask(&node, &connect, cmd).await;
    node.shutdown().await;
    asked
}

async fn ask(node: &Node, connect: &str, cmd: DhtCommand) -> Result<(), CliError> {
    let unavailable = |e: weft::Error| CliError::Unavailable(format!("{connect}: {e}"));
    match cmd {
        DhtCommand::Stats { .. } => {
            let figures = node.ask_dht_stats(connect).await.map_err(unavailable)?;
            println!("{}", json!(figures));
            Ok(())
        }
        DhtCommand::Lookup {
            realm, procedure, ..
        } => {
            weft::Name::new(&procedure).map_err(|e| CliError::Usage(e.to_string()))?;
            let found = node
                .ask_dht_lookup(connect, &realm, &procedure)
                .await
                .map_err(|e| match e {
                    weft::Error::Config(_) | weft::Error::Name(_) => {
                        CliError::Usage(format!("--realm {realm}: {e}"))
                    }
                    other => unavailable(other),
                })?;
            if found.is_empty() {
                return Err(CliError::NotFound(format!(
                    "no provider of {procedure} in {realm} found from {connect}"
                )));
            }
            for provider in found {
                let addresses: Vec<String> =
                    provider.addresses.iter().map(ToString::to_string).collect();
                println!(
                    "{}",
                    json!({"did": provider.did.to_string(), "addresses": addresses})
                );
            }
            Ok(())
        }
    }
}
