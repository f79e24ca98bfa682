//! `weft nat`: asking a node whether it can be reached, and how it reaches its peers.

use serde_json::json;
use weft::Node;

use crate::cli::NatArgs;
use crate::error::CliError;

/// Prints the node's answer as one JSON object (see [`weft::NatReport`]'s JSON form).
pub(crate) async fn run(args: NatArgs) -> Result<(), CliError> {
    let connect = args.connect;
    weft_net::parse_addr(&connect).map_err(|e| CliError::Usage(format!("--connect: {e}")))?;
    // A client of the node asked: it joins no realm, provides nothing and is dialed by nobody.
    let node = Node::builder().connect(connect.clone()).start().await?;
    let asked = node.ask_nat(&connect).await;
    node.shutdown().await;
    let report = asked.map_err(|e| CliError::Unavailable(format!("{connect}: {e}")))?;
    println!("{}", json!(report));
    Ok(())
}
