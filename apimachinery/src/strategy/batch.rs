//! `batch/v1`.

use k8s_openapi::api::batch::v1 as batch;
use kubecache_core::registry::{ALL, NAMESPACED, ResourceInfo};
use kubecache_core::status::Cause;
use serde_json::Value;

use super::{DefaultContext, Strategy, typed_as};
use super::{defaults, validation};
use crate::table::{self, Printer};

pub struct CronJobs;

impl Strategy for CronJobs {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new("batch", "v1", "cronjobs", "cronjob", "CronJob", NAMESPACED)
            .short(&["cj"])
            .categories(ALL)
            .status()
    }
    typed_as!(batch::CronJob);
    fn tracks_generation(&self) -> bool {
        true
    }
    fn default(&self, object: &mut Value, _: &DefaultContext<'_>) {
        defaults::cron_job(object);
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        validation::cron_job(object)
    }
    fn printer(&self) -> &'static Printer {
        &table::CRONJOB
    }
}

pub struct Jobs;

impl Strategy for Jobs {
    fn info(&self) -> ResourceInfo {
        ResourceInfo::new("batch", "v1", "jobs", "job", "Job", NAMESPACED)
            .selectable(&["status.successful"])
            .categories(ALL)
            .status()
    }
    typed_as!(batch::Job);
    fn tracks_generation(&self) -> bool {
        true
    }
    /// A created Job also gets its generated selector (kube's `PrepareForCreate`, which runs
    /// after the uid is set: the selector names it).
    fn default(&self, object: &mut Value, context: &DefaultContext<'_>) {
        defaults::job(object);
        if context.create {
            defaults::generate_job_selector(object);
        }
    }
    fn validate(&self, object: &Value) -> Vec<Cause> {
        validation::job(object)
    }
    fn validate_update(&self, new: &Value, old: &Value) -> Vec<Cause> {
        validation::job_update(new, old)
    }
    fn printer(&self) -> &'static Printer {
        &table::JOB
    }
}
