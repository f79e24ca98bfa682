//! The router's half of repairing the overlay (`core::repair`): the batches taken lately offered
//! to members once a round, and members' offers and wants answered.

use std::time::Instant;

use actix::prelude::*;
use tracing::debug;
use weft_names::Pattern;
use weft_net::PeerId;
use weft_wire::{BatchIds, DEFAULT_MAX_FRAME, Forward, ForwardId, Frame};

use super::Router;
use super::forwarding::may_read;
use crate::core::slots::Slot;
use crate::unix_now;

/// Batches a member took lately and offers (`Frame::Have`), or asks for (`Frame::Want`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RemoteBatchIds {
    /// The member.
    pub peer: PeerId,
    /// Whether it asks for them rather than offers them.
    pub want: bool,
    /// The batches' ids.
    pub ids: Vec<ForwardId>,
    /// Counts the message against its session's limit until the router is done with it.
    pub ticket: crate::sender::Ticket,
}

impl Router {
    /// Offers each member the batches taken lately that it may have missed (`core::repair`).
    pub(super) fn offer_repairs(&mut self) {
        let now = Instant::now();
        self.forwarding.repair.expire(now);
        if self.forwarding.key.is_none() || self.forwarding.repair.len() == 0 {
            return;
        }
        let members = self.routing.members();
        let slots: Vec<Slot> = members
            .slots()
            .filter(|slot| members.get(*slot).is_some_and(|m| !m.client))
            .collect();
        let (seat, cache, unix) = (&self.seat, &mut self.chain_cache, unix_now());
        let offers = self.forwarding.repair.offers(
            &slots,
            |slot, topic| {
                let pattern = Pattern::from(topic.clone());
                members
                    .get(slot)
                    .is_some_and(|member| may_read(seat, cache, member, &pattern, unix))
            },
            now,
        );
        for (slot, ids) in offers {
            if !self.send_batch_ids(slot, Frame::Have, &ids) {
                self.forwarding.repair.not_offered(slot, &ids);
            }
        }
    }

    /// Sends `ids` to the member in `slot`, as an offer or a want (`kind`), and says whether its
    /// session took them. Like batches, they do not make its session look busy.
    fn send_batch_ids(
        &mut self,
        slot: Slot,
        kind: fn(BatchIds) -> Frame,
        ids: &[ForwardId],
    ) -> bool {
        let Some(member) = self.routing.members().get(slot) else {
            return false;
        };
        let frame = kind(BatchIds {
            realm: self.seat.index,
            ids: ids.to_vec(),
        });
        let mut encoded = Vec::new();
        match weft_wire::encode(&frame, DEFAULT_MAX_FRAME, &mut encoded) {
            // A lost offer or want costs a repair, not a publication: not counted as a drop.
            Ok(()) => member.sender.send_passing(&encoded, self.seat.index).queued,
            Err(e) => {
                debug!(error = %e, "batch ids do not fit in a frame");
                false
            }
        }
    }
}

/// A member's offer of batches it took (asks for those not taken here), or its want of some
/// this node offered (sends them, with no hops left, so that the member passes them only to
/// those of its members that want them, unless no member had a batch yet).
impl Handler<RemoteBatchIds> for Router {
    type Result = ();

    fn handle(&mut self, msg: RemoteBatchIds, _ctx: &mut Context<Self>) {
        let members = self.routing.members();
        let Some((slot, member)) = members.by_peer(&msg.peer) else {
            return;
        };
        // A client is sent publications, not batches, and its own reach the realm as its
        // access node's.
        if member.client || self.forwarding.key.is_none() {
            return;
        }
        let now = Instant::now();
        if !msg.want {
            let seen = &mut self.forwarding.seen;
            let wanted =
                self.forwarding
                    .repair
                    .wanted(slot, &msg.ids, |id| seen.contains(id, now), now);
            if !wanted.is_empty() {
                self.send_batch_ids(slot, Frame::Want, &wanted);
            }
            return;
        }
        let (seat, cache, unix) = (&self.seat, &mut self.chain_cache, unix_now());
        let batches = self.forwarding.repair.answer(
            slot,
            &msg.ids,
            |topic| may_read(seat, cache, member, &Pattern::from(topic.clone()), unix),
            now,
        );
        let mut encoded = Vec::new();
        for forward in batches {
            let forward = Forward {
                realm: self.seat.index,
                ..forward
            };
            encoded.clear();
            if weft_wire::encode(&Frame::Forward(forward), DEFAULT_MAX_FRAME, &mut encoded).is_ok()
            {
                let pushed = member.sender.send_passing(&encoded, self.seat.index);
                if !pushed.queued {
                    self.counters.not_queued(pushed);
                }
            }
        }
    }
}
