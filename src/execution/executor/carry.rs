//! Actions carried into a cycle from earlier ones: approved actions (checked
//! again against the current config), queued ones that are due, and those an
//! earlier cycle planned but never finished (it failed or was killed),
//! checked again too, with the dependencies that succeeded there satisfied.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use tracing::{info, warn};

use super::Executor;
use crate::execution::guard;
use crate::model::{Action, Origin};
use crate::model::{ApprovalStatus, ExecutionStore, StoreError};

impl Executor {
    /// Actions carried into cycle `cycle_id`: approved ones (checked again
    /// against the current config), queued ones that are due, and those an
    /// earlier cycle planned but never finished (it failed or was killed),
    /// checked again too. Expires approvals past their expiry on the way.
    pub async fn carried(
        &self,
        store: &dyn ExecutionStore,
        cycle_id: i64,
        now: DateTime<Utc>,
        dry_run: bool,
    ) -> Result<Vec<Action>, StoreError> {
        for id in store.expire_approvals(now).await? {
            warn!(approval = %id, "Approval expired before anyone decided; the action will not run");
        }
        let mut carried = Vec::new();
        for approval in store.approvals(Some(ApprovalStatus::Approved)).await? {
            if approval.dry_run != dry_run {
                continue;
            }
            match guard::revalidate(&self.settings, &self.policy, &approval.action) {
                Ok(()) => {
                    let mut action = approval.action.clone();
                    action.origin = Origin::Approval;
                    action.require_approval = false;
                    action.after.clear();
                    action.reason = format!("approved ({}): {}", approval.id, action.reason);
                    // Held in the queue before the approval is marked done,
                    // so a cycle that dies now still runs it next time.
                    store.hold_plan(cycle_id, std::slice::from_ref(&action), now).await?;
                    store
                        .set_approval_status(&approval.id, ApprovalStatus::Executed, None, now)
                        .await?;
                    carried.push(action);
                }
                Err(why) => {
                    warn!(approval = %approval.id, reason = %why, "Approved action is no longer valid; not run");
                    store
                        .set_approval_status(&approval.id, ApprovalStatus::Invalid, Some(&why), now)
                        .await?;
                }
            }
        }
        let taken = store.take_due_actions(now, cycle_id).await?;
        let taken_ids: HashSet<String> = taken.iter().map(|t| t.action.id.clone()).collect();
        for t in taken {
            let mut action = t.action;
            if carried.iter().any(|a: &Action| a.id == action.id) {
                continue;
            }
            let Some(left_by) = t.left_by else {
                carried.push(action);
                continue;
            };
            if let Err(why) = guard::revalidate(&self.settings, &self.policy, &action) {
                warn!(action = %action.id, cycle = left_by, reason = %why, "Action left by a failed cycle is no longer valid; not run");
                store.release_taken(cycle_id, Some(&action.id)).await?;
                continue;
            }
            // What it depends on either comes along, or ran in the failed
            // cycle: a dependency that succeeded there is satisfied; one that
            // did not stays, so the plan leaves this action out with the reason.
            let mut after = Vec::with_capacity(action.after.len());
            for dep in action.after.drain(..) {
                let satisfied = !taken_ids.contains(&dep)
                    && store
                        .outcome_in_cycle(&dep, left_by)
                        .await?
                        .is_some_and(|o| o.satisfies_dependents());
                if !satisfied {
                    after.push(dep);
                }
            }
            action.after = after;
            info!(action = %action.id, cycle = left_by, "Carrying an action a failed cycle planned but did not finish");
            carried.push(action);
        }
        Ok(carried)
    }
}
