//! What a subscriber (a WebSocket or an SSE stream) gets of the gateway,
//! and the limits it is admitted under.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Subscriptions;
use crate::auth::{ConnectionGuard, Principal};
use crate::bus::Bus;
use crate::config::{SlowConsumerPolicy, WebSocketSettings};
use crate::error::ApiError;
use crate::fanout::{Hub, Outbox, OutboxLimits};
use crate::metrics::Metrics;
use crate::replay;

/// A subscriber's places in the connection limits: the gateway-wide one
/// and its token's; both are released when this is dropped.
pub type Slot = (OwnedSemaphorePermit, ConnectionGuard);

/// What a subscriber (a WebSocket or an SSE stream) needs of the gateway,
/// handed over once per connection, so subscriptions depend on these and
/// not on the application state. One pointer: every idle socket holds a
/// copy or two (B7 counts bytes per socket).
#[derive(Clone)]
pub struct Context(Arc<Shared>);

impl Context {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for Context {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The parts of a [`Context`].
pub struct Shared {
    pub bus: Arc<Bus>,
    pub hub: Arc<Hub>,
    /// Tracks the connection's tasks, so shutdown waits for them.
    pub tasks: TaskTracker,
    /// Cancelled when the gateway starts shutting down.
    pub shutdown: CancellationToken,
    pub metrics: Arc<Metrics>,
    /// One permit per connection, WebSocket or SSE.
    pub slots: Arc<Semaphore>,
    pub limits: Limits,
}

/// `gateway.websocket`'s limits, which SSE streams share.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// Subscriptions one connection may hold (a token may allow fewer).
    pub max_subscriptions: usize,
    pub outbox: OutboxLimits,
    /// The slow-consumer policy when the client picks none.
    pub default_policy: SlowConsumerPolicy,
}

impl Limits {
    pub fn from_settings(ws: &WebSocketSettings) -> Self {
        Self {
            max_connections: ws.max_connections,
            max_subscriptions: ws.max_subscriptions_per_socket,
            outbox: OutboxLimits {
                max_messages: ws.queue_max_messages,
                max_bytes: ws.queue_max_bytes,
                max_replies: ws.max_pending_replies,
            },
            default_policy: ws.slow_consumer_policy,
        }
    }

    /// Refuses a new subscriber (WebSocket or SSE) that asks for more
    /// subjects up front than one connection may hold.
    pub fn check_subject_count(&self, subjects: usize) -> Result<(), ApiError> {
        if subjects > self.max_subscriptions {
            return Err(ApiError::TooManySubscriptions(self.max_subscriptions));
        }
        Ok(())
    }

    /// A subscriber's outbox with `policy`, or the default one.
    pub fn outbox(&self, policy: Option<SlowConsumerPolicy>) -> Arc<Outbox> {
        Arc::new(Outbox::new(
            self.outbox,
            policy.unwrap_or(self.default_policy),
        ))
    }
}

impl Context {
    /// Takes a new subscriber's places in the gateway's connection limit and
    /// in the caller's own quota.
    pub fn admit(&self, caller: &Principal) -> Result<Slot, ApiError> {
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| ApiError::TooManyConnections(self.limits.max_connections))?;
        Ok((permit, caller.open_connection()?))
    }

    /// A new subscriber's places in the limits and its (still empty)
    /// subscriptions, feeding an outbox with `policy` or the default one.
    pub fn start(
        &self,
        caller: Principal,
        policy: Option<SlowConsumerPolicy>,
    ) -> Result<(Subscriptions, Slot), ApiError> {
        let slot = self.admit(&caller)?;
        let outbox = self.limits.outbox(policy);
        Ok((Subscriptions::new(self.clone(), caller, outbox), slot))
    }

    pub(super) fn replays(&self) -> replay::Replays {
        replay::Replays {
            bus: self.bus.clone(),
            hub: self.hub.clone(),
            tasks: self.tasks.clone(),
        }
    }
}
