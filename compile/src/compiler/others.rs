//! Kinds that do not reach the snapshot yet (usage plans, authorizers): they get a status so
//! users see whether their references resolve. Later issues compile them.

use causeway_crds::{Authorizer, UsagePlan};

use super::{Apis, Verdict, api_ref_problem, cel, obj_key};
use crate::Inventory;
use crate::status::{Kind, ObjectStatus, StatusDetail};

/// One status per UsagePlan: accepted when every Api it names exists.
pub(crate) fn usage_plan_statuses(inventory: &Inventory, apis: &Apis) -> Vec<ObjectStatus> {
    inventory
        .usage_plans
        .iter()
        .map(|plan: &UsagePlan| {
            let mut verdict = Verdict::default();
            verdict.check(cel::check(Kind::UsagePlan, plan));
            let (namespace, _) = obj_key(&plan.metadata);
            for (i, binding) in plan.spec.api_stages.iter().enumerate() {
                if let Some(mut p) = api_ref_problem(apis, &namespace, &binding.api) {
                    p.message =
                        p.message
                            .replacen("spec.apiRef", &format!("spec.apiStages[{i}].api"), 1);
                    verdict.add(p);
                }
            }
            verdict.into_status(Kind::UsagePlan, &plan.metadata, StatusDetail::None)
        })
        .collect()
}

/// One status per Authorizer: accepted when its Api exists.
pub(crate) fn authorizer_statuses(inventory: &Inventory, apis: &Apis) -> Vec<ObjectStatus> {
    inventory
        .authorizers
        .iter()
        .map(|authorizer: &Authorizer| {
            let mut verdict = Verdict::default();
            verdict.check(cel::check(Kind::Authorizer, authorizer));
            let (namespace, _) = obj_key(&authorizer.metadata);
            if let Some(p) = api_ref_problem(apis, &namespace, &authorizer.spec.api_ref.name) {
                verdict.add(p);
            }
            verdict.into_status(Kind::Authorizer, &authorizer.metadata, StatusDetail::None)
        })
        .collect()
}
