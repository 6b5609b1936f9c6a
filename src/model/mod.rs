//! The plain data the phases share, and nothing else: what a source saw
//! ([`observation`]), alert instances and their states ([`alert`]), actions
//! and the plan ([`action`], [`plan`], [`planned`]), messages and what
//! happened to them ([`message`], [`outcome`]), source health ([`health`]),
//! learning keys and statistics ([`learning`]), and the store's records and
//! the one trait through which the executor uses it ([`store`]).
//!
//! Every phase (perception, planning, execution, memory) depends on this and
//! on config only, never on each other. This module must never do I/O: types,
//! their invariants, and pure helpers over them.

pub mod action;
pub mod alert;
pub mod condition_values;
pub mod health;
pub mod investigation;
pub mod labels;
pub mod learning;
pub mod message;
pub mod observation;
pub mod outcome;
pub mod plan;
pub mod planned;
pub mod silence;
pub mod store;

pub use action::{Action, Evidence, InstanceRef, Origin, RenderLater, ReportInput, action_id, labels_text};
pub use alert::{AlertState, Instance, Transition};
pub use condition_values::ConditionValues;
pub use health::SourceHealth;
pub use investigation::{Investigations, QueryRows};
pub use learning::{LearnKey, Learned, PastFiring, PatternKey, PatternStats};
pub use message::{
    AlertRef, ChannelError, Link, ListEntry, Message, Receipt, Rendered, SendRef, Table, Target, Thread,
};
pub use observation::{Labels, Observation, ObservationStatus, Row, SeriesKey, Values};
pub use outcome::{Delivery, DeliveryUpdate, Findings, Outcome, QueryFailure, Status};
pub use plan::{LeftOut, Plan, Replanned};
pub use planned::{HistoryRequest, InstanceUpdate, LastNotified, Planned};
pub use silence::{Silence, SilenceError};
pub use store::{
    Approval, ApprovalStatus, Claim, EffectStatus, ExecutionStore, GroupMember, GroupState, HeldEffect, HoldReason,
    MemberStatus, NewEffect, Notification, Settle, StoreError, StoreFuture, StoredEffect, Taken,
};
