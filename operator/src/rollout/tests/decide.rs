//! The state machine, as a user drives it: each table is one story, each row a user action (or
//! the passing of time) and what `kubectl get`/`describe` and the Ingresses then show.

use switchyard_crds::condition::{DEGRADED, PAUSED, PROGRESSING, PROMOTED, READY, find};
use switchyard_crds::{CanaryStep, RolloutRouteStatus, Verdict};

use super::Do::{Backend, Conflict, Measure, MeasureOther, Nothing, Pause, Restart, Verb};
use super::*;
use crate::rollout::{EventType, MAX_RUNS};

const V1: &str = "shop -> shop-v1:80 on shop.example.com";
const V2: &str = "shop -> shop-v2:80 on shop.example.com";
const CANARY_V2_10: &str = "shop-canary -> shop-v2:80 on shop.example.com [canary=true \
    canary-by-cookie=canary canary-by-header=X-Canary canary-by-header-value=true \
    canary-weight=10]";
const CANARY_V2_50: &str = "shop-canary -> shop-v2:80 on shop.example.com [canary=true \
    canary-by-cookie=canary canary-by-header=X-Canary canary-by-header-value=true \
    canary-weight=50]";
const CANARY_V3_10: &str = "shop-canary -> shop-v3:80 on shop.example.com [canary=true \
    canary-by-cookie=canary canary-by-header=X-Canary canary-by-header-value=true \
    canary-weight=10]";
const PREVIEW_V2: &str = "shop-preview -> shop-v2:80 on preview.shop.example.com";

const HEALTHY_V1: &str = "Healthy stable=shop-v1 desired=shop-v1";
const STEP1: &str = "Paused stable=shop-v1 desired=shop-v2 step=1 weight=10";
const STEP3: &str = "Paused stable=shop-v1 desired=shop-v2 step=3 weight=50";
const STARTED: &[&str] = &["RolloutStarted", "StepAdvanced", "Paused"];

fn condition(status: &RolloutRouteStatus, type_: &str) -> (String, String, i64, Option<i64>) {
    let c = find(&status.conditions, type_).expect("condition present");
    (
        c.status.clone(),
        c.reason.clone(),
        c.last_transition_time.0.duration_since(t(0)).as_secs(),
        c.observed_generation,
    )
}

#[test]
fn canary_walks_its_steps_through_a_timed_and_a_manual_pause() {
    Sim::new(route(example_steps())).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            STEP1,
            STARTED,
            &[V1, CANARY_V2_10],
            Some(30),
        ),
        row(25, Nothing, STEP1, &[], &[V1, CANARY_V2_10], Some(15)),
        row(
            40,
            Nothing,
            STEP3,
            &["StepAdvanced", "Paused"],
            &[V1, CANARY_V2_50],
            None,
        ),
        row(500, Nothing, STEP3, &[], &[V1, CANARY_V2_50], None),
        row(
            510,
            Verb("promote"),
            "Healthy stable=shop-v2 desired=shop-v2 previous=shop-v1 step=4",
            &["StepAdvanced", "Promoted"],
            &[V2],
            None,
        ),
        row(
            520,
            Nothing,
            "Healthy stable=shop-v2 desired=shop-v2 previous=shop-v1 step=4",
            &[],
            &[V2],
            None,
        ),
    ]);
}

#[test]
fn a_restart_resumes_the_timed_pause_with_the_time_it_had_left() {
    Sim::new(route(example_steps())).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            STEP1,
            STARTED,
            &[V1, CANARY_V2_10],
            Some(30),
        ),
        row(25, Restart, STEP1, &[], &[V1, CANARY_V2_10], Some(15)),
        row(39, Restart, STEP1, &[], &[V1, CANARY_V2_10], Some(1)),
        row(
            40,
            Restart,
            STEP3,
            &["StepAdvanced", "Paused"],
            &[V1, CANARY_V2_50],
            None,
        ),
    ]);
}

#[test]
fn promote_ends_the_current_pause_and_promote_full_jumps_to_the_end() {
    Sim::new(route(example_steps())).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            STEP1,
            STARTED,
            &[V1, CANARY_V2_10],
            Some(30),
        ),
        row(
            20,
            Verb("promote"),
            STEP3,
            &["StepAdvanced", "StepAdvanced", "Paused"],
            &[V1, CANARY_V2_50],
            None,
        ),
    ]);
    Sim::new(route(example_steps())).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            STEP1,
            STARTED,
            &[V1, CANARY_V2_10],
            Some(30),
        ),
        row(
            20,
            Verb("promote-full"),
            "Healthy stable=shop-v2 desired=shop-v2 previous=shop-v1 step=4",
            &["Promoted"],
            &[V2],
            None,
        ),
    ]);
}

#[test]
fn abort_sends_everything_to_stable_until_retry_or_a_new_backend() {
    const ABORTED: &str = "Degraded stable=shop-v1 desired=shop-v2 step=1 weight=0";
    Sim::new(route(example_steps())).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            5,
            Verb("abort"),
            HEALTHY_V1,
            &["ActionIgnored"],
            &[V1],
            None,
        ),
        row(
            10,
            Backend("shop-v2"),
            STEP1,
            STARTED,
            &[V1, CANARY_V2_10],
            Some(30),
        ),
        row(20, Verb("abort"), ABORTED, &["Aborted"], &[V1], None),
        // The pause would have ended at 40: an aborted route does not move.
        row(100, Nothing, ABORTED, &[], &[V1], None),
        row(
            110,
            Verb("retry"),
            STEP1,
            STARTED,
            &[V1, CANARY_V2_10],
            Some(30),
        ),
        row(120, Verb("abort"), ABORTED, &["Aborted"], &[V1], None),
        row(
            130,
            Backend("shop-v3"),
            "Paused stable=shop-v1 desired=shop-v3 step=1 weight=10",
            STARTED,
            &[V1, CANARY_V3_10],
            Some(30),
        ),
        row(
            140,
            Verb("abort"),
            "Degraded stable=shop-v1 desired=shop-v3 step=1 weight=0",
            &["Aborted"],
            &[V1],
            None,
        ),
        row(
            150,
            Backend("shop-v1"),
            HEALTHY_V1,
            &["Promoted"],
            &[V1],
            None,
        ),
    ]);
}

#[test]
fn abort_is_a_warning_with_the_reason_in_the_degraded_condition() {
    let mut sim = Sim::new(route(example_steps()));
    sim.apply(Nothing, 0);
    sim.apply(Backend("shop-v2"), 10);
    let decision = sim.apply(Verb("abort"), 20);
    assert_eq!(decision.events[0].type_, EventType::Warning);
    let status = &decision.status;
    assert_eq!(
        condition(status, DEGRADED),
        ("True".into(), "Aborted".into(), 20, Some(2))
    );
    assert_eq!(condition(status, PROMOTED).1, "Aborted");
    assert_eq!(condition(status, PROGRESSING).0, "False");
    assert_eq!(
        status.message.as_deref(),
        Some("rollout of shop-v2:80 aborted on request; shop-v1:80 serves all traffic")
    );
}

#[test]
fn changing_the_backend_mid_rollout_restarts_and_setting_it_back_cancels() {
    Sim::new(route(example_steps())).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            STEP1,
            STARTED,
            &[V1, CANARY_V2_10],
            Some(30),
        ),
        row(
            40,
            Nothing,
            STEP3,
            &["StepAdvanced", "Paused"],
            &[V1, CANARY_V2_50],
            None,
        ),
        row(
            50,
            Backend("shop-v3"),
            "Paused stable=shop-v1 desired=shop-v3 step=1 weight=10",
            STARTED,
            &[V1, CANARY_V3_10],
            Some(30),
        ),
        // A clean abort: Healthy, not Degraded.
        row(
            60,
            Backend("shop-v1"),
            HEALTHY_V1,
            &["Aborted"],
            &[V1],
            None,
        ),
        row(70, Nothing, HEALTHY_V1, &[], &[V1], None),
    ]);
}

#[test]
fn undo_switches_back_to_the_previous_backend_until_spec_backend_changes() {
    const UNDONE: &str = "Degraded stable=shop-v1 desired=shop-v2 previous=shop-v2 weight=0";
    Sim::new(route(example_steps())).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(2, Verb("undo"), HEALTHY_V1, &["ActionIgnored"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            STEP1,
            STARTED,
            &[V1, CANARY_V2_10],
            Some(30),
        ),
        row(
            15,
            Verb("undo"),
            STEP1,
            &["ActionIgnored"],
            &[V1, CANARY_V2_10],
            Some(25),
        ),
        row(
            20,
            Verb("promote-full"),
            "Healthy stable=shop-v2 desired=shop-v2 previous=shop-v1 step=4",
            &["Promoted"],
            &[V2],
            None,
        ),
        row(30, Verb("undo"), UNDONE, &["Undone"], &[V1], None),
        row(40, Nothing, UNDONE, &[], &[V1], None),
        row(50, Verb("undo"), UNDONE, &["ActionIgnored"], &[V1], None),
        row(
            60,
            Backend("shop-v3"),
            "Paused stable=shop-v1 desired=shop-v3 previous=shop-v2 step=1 weight=10",
            STARTED,
            &[V1, CANARY_V3_10],
            Some(30),
        ),
    ]);
}

#[test]
fn undo_leaves_spec_backend_alone_and_says_so() {
    let mut sim = Sim::new(route(example_steps()));
    sim.apply(Nothing, 0);
    sim.apply(Backend("shop-v2"), 10);
    sim.apply(Verb("promote-full"), 20);
    let decision = sim.apply(Verb("undo"), 30);
    assert_eq!(sim.route.spec.backend, backend("shop-v2"));
    assert_eq!(
        condition(&decision.status, DEGRADED),
        ("True".into(), "Undone".into(), 30, Some(2))
    );
    // Retry rolls spec.backend out again, from the backend undo went back to.
    sim.apply(Verb("retry"), 40);
    assert_eq!(
        brief(&sim.status()),
        "Paused stable=shop-v1 desired=shop-v2 previous=shop-v2 step=1 weight=10"
    );
}

#[test]
fn spec_paused_holds_the_pause_clock_and_resume_keeps_the_time_left() {
    Sim::new(route(example_steps())).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            STEP1,
            STARTED,
            &[V1, CANARY_V2_10],
            Some(30),
        ),
        // Held at 20 with 20s of the pause left.
        row(
            20,
            Pause(true),
            STEP1,
            &["Paused"],
            &[V1, CANARY_V2_10],
            None,
        ),
        row(100, Restart, STEP1, &[], &[V1, CANARY_V2_10], None),
        row(
            200,
            Pause(false),
            STEP1,
            &["Resumed"],
            &[V1, CANARY_V2_10],
            Some(20),
        ),
        row(219, Nothing, STEP1, &[], &[V1, CANARY_V2_10], Some(1)),
        row(
            220,
            Nothing,
            STEP3,
            &["StepAdvanced", "Paused"],
            &[V1, CANARY_V2_50],
            None,
        ),
    ]);
}

#[test]
fn spec_paused_shows_in_conditions_and_message() {
    let mut sim = Sim::new(route(example_steps()));
    sim.apply(Nothing, 0);
    sim.apply(Backend("shop-v2"), 10);
    sim.apply(Pause(true), 20);
    let status = sim.apply(Nothing, 30).status;
    assert_eq!(
        condition(&status, PAUSED),
        ("True".into(), "PausedByUser".into(), 10, Some(3))
    );
    // Progressing goes Unknown, as for a paused Deployment; its time is when the hold began.
    assert_eq!(
        condition(&status, PROGRESSING),
        ("Unknown".into(), "PausedByUser".into(), 20, Some(3))
    );
    assert_eq!(
        status.message.as_deref(),
        Some("paused by spec.paused at step 2 of 4: pause 30s (weight 10); 20s of the pause left")
    );
}

#[test]
fn promote_and_retry_wait_for_resume_but_abort_acts_while_paused() {
    Sim::new(route(example_steps())).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            STEP1,
            STARTED,
            &[V1, CANARY_V2_10],
            Some(30),
        ),
        row(
            20,
            Pause(true),
            STEP1,
            &["Paused"],
            &[V1, CANARY_V2_10],
            None,
        ),
        row(30, Verb("promote"), STEP1, &[], &[V1, CANARY_V2_10], None),
        row(
            40,
            Pause(false),
            STEP3,
            &["Resumed", "StepAdvanced", "StepAdvanced", "Paused"],
            &[V1, CANARY_V2_50],
            None,
        ),
        row(
            50,
            Pause(true),
            STEP3,
            &["Paused"],
            &[V1, CANARY_V2_50],
            None,
        ),
        row(
            60,
            Verb("abort"),
            "Degraded stable=shop-v1 desired=shop-v2 step=3 weight=0",
            &["Aborted"],
            &[V1],
            None,
        ),
    ]);
}

#[test]
fn a_backend_change_while_paused_waits_for_resume() {
    const PENDING: &str = "Paused stable=shop-v1 desired=shop-v1";
    Sim::new(route(example_steps())).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(5, Pause(true), HEALTHY_V1, &["Paused"], &[V1], None),
        row(10, Backend("shop-v2"), PENDING, &[], &[V1], None),
        row(
            20,
            Pause(false),
            STEP1,
            &["Resumed", "RolloutStarted", "StepAdvanced", "Paused"],
            &[V1, CANARY_V2_10],
            Some(30),
        ),
    ]);
}

/// Steps [10, pause {}] with analysis every 30s, failureLimit 2, minRequests 50.
fn analysed_route() -> RolloutRoute {
    let mut route = route(canary(vec![weight(10), wait_for_promote()], None));
    if let Some(canary) = route.spec.strategy.canary.as_mut() {
        canary.analysis = Some(analysis());
    }
    route
}

#[test]
fn analysis_failing_twice_in_a_row_aborts_and_inconclusive_is_not_a_failure() {
    const RUNNING: &str = "Paused stable=shop-v1 desired=shop-v2 step=1 weight=10";
    const CANARY: &str = "shop-canary -> shop-v2:80 on shop.example.com [canary=true \
        canary-weight=10]";
    let mut sim = Sim::new(analysed_route());
    sim.play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            RUNNING,
            STARTED,
            &[V1, CANARY],
            Some(30),
        ),
        // Too early: the first interval ends at 40.
        row(
            25,
            Measure(500, 0.2, 10),
            RUNNING,
            &[],
            &[V1, CANARY],
            Some(15),
        ),
        // Not the rollout's backend: ignored, and overdue, so look again an interval later.
        row(
            40,
            MeasureOther("shop-v1", 500),
            RUNNING,
            &[],
            &[V1, CANARY],
            Some(30),
        ),
        row(
            41,
            Measure(20, 1.0, 10),
            RUNNING,
            &[],
            &[V1, CANARY],
            Some(30),
        ),
        row(
            71,
            Measure(200, 0.5, 10),
            RUNNING,
            &[],
            &[V1, CANARY],
            Some(30),
        ),
        row(
            101,
            Measure(200, 0.999, 10),
            RUNNING,
            &[],
            &[V1, CANARY],
            Some(30),
        ),
        row(
            131,
            Measure(200, 0.5, 10),
            RUNNING,
            &[],
            &[V1, CANARY],
            Some(30),
        ),
        row(
            161,
            Measure(10, 0.0, 10),
            RUNNING,
            &[],
            &[V1, CANARY],
            Some(30),
        ),
        row(
            191,
            Measure(200, 0.97, 900),
            "Degraded stable=shop-v1 desired=shop-v2 step=1 weight=0",
            &["AnalysisFailed"],
            &[V1],
            None,
        ),
    ]);
    let status = sim.status();
    let analysis = status.analysis.clone().expect("analysis status");
    let verdicts: Vec<Verdict> = analysis.runs.iter().map(|r| r.verdict).collect();
    use Verdict::{Failed, Inconclusive, Successful};
    assert_eq!(
        verdicts,
        [
            Inconclusive,
            Failed,
            Successful,
            Failed,
            Inconclusive,
            Failed
        ]
    );
    assert_eq!(analysis.consecutive_failures, Some(2));
    let degraded = find(&status.conditions, DEGRADED).expect("Degraded");
    assert_eq!(degraded.reason, "AnalysisFailed");
    assert_eq!(
        degraded.message,
        "analysis failed 2 time(s) in a row (success rate 0.97 < 0.99): rollout of shop-v2:80 \
         aborted, shop-v1:80 serves all traffic"
    );
    let event = &sim.last.expect("a pass ran").events[0];
    assert_eq!(event.type_, EventType::Warning);
    assert_eq!(event.message, degraded.message);
}

#[test]
fn analysis_keeps_only_the_latest_runs() {
    let mut sim = Sim::new(analysed_route());
    sim.apply(Nothing, 0);
    sim.apply(Backend("shop-v2"), 10);
    for i in 0..15 {
        sim.apply(Measure(200, 1.0, 10), 40 + 30 * i);
    }
    let runs = sim.status().analysis.expect("analysis").runs;
    assert_eq!(runs.len(), MAX_RUNS);
    assert_eq!(runs[MAX_RUNS - 1].time.0, t(40 + 30 * 14));
}

#[test]
fn analysis_is_due_one_interval_after_the_start_then_after_each_run() {
    let mut sim = Sim::new(analysed_route());
    sim.apply(Nothing, 0);
    assert_eq!(
        crate::rollout::analysis_due(&sim.route, &sim.status()),
        None
    );
    sim.apply(Backend("shop-v2"), 10);
    let due = crate::rollout::analysis_due(&sim.route, &sim.status()).expect("due");
    assert_eq!(due.backend, backend("shop-v2"));
    assert_eq!(due.at, t(40));
    assert_eq!(due.percentile, Some(99.0));
    sim.apply(Measure(200, 1.0, 10), 42);
    let due = crate::rollout::analysis_due(&sim.route, &sim.status()).expect("due");
    assert_eq!(due.at, t(72));
    sim.apply(Pause(true), 50);
    assert_eq!(
        crate::rollout::analysis_due(&sim.route, &sim.status()),
        None
    );
}

#[test]
fn spec_paused_also_holds_analysis() {
    let mut sim = Sim::new(analysed_route());
    sim.apply(Nothing, 0);
    sim.apply(Backend("shop-v2"), 10);
    sim.apply(Pause(true), 20);
    let decision = sim.apply(Measure(200, 0.0, 9000), 40);
    assert_eq!(decision.events, []);
    assert_eq!(sim.status().analysis.expect("analysis").runs, []);
}

#[test]
fn blue_green_previews_then_switches_after_auto_promotion_even_across_a_restart() {
    const WAITING: &str = "Paused stable=shop-v1 desired=shop-v2 weight=0";
    Sim::new(route(blue_green(Some(300), None))).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            WAITING,
            &["RolloutStarted"],
            &[V1, PREVIEW_V2],
            Some(300),
        ),
        row(200, Restart, WAITING, &[], &[V1, PREVIEW_V2], Some(110)),
        row(
            310,
            Nothing,
            "Healthy stable=shop-v2 desired=shop-v2 previous=shop-v1",
            &["Promoted"],
            &[V2],
            None,
        ),
        row(
            320,
            Verb("undo"),
            "Degraded stable=shop-v1 desired=shop-v2 previous=shop-v2 weight=0",
            &["Undone"],
            &[V1],
            None,
        ),
    ]);
}

#[test]
fn blue_green_without_automation_waits_for_promote() {
    const WAITING: &str = "Paused stable=shop-v1 desired=shop-v2 weight=0";
    let mut sim = Sim::new(route(blue_green(None, None)));
    sim.play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            WAITING,
            &["RolloutStarted"],
            &[V1, PREVIEW_V2],
            None,
        ),
        row(9999, Nothing, WAITING, &[], &[V1, PREVIEW_V2], None),
    ]);
    let paused = condition(&sim.status(), PAUSED);
    assert_eq!(
        (paused.0.as_str(), paused.1.as_str()),
        ("True", "WaitingForPromote")
    );
    sim.play(&[row(
        10000,
        Verb("promote"),
        "Healthy stable=shop-v2 desired=shop-v2 previous=shop-v1",
        &["Promoted"],
        &[V2],
        None,
    )]);
}

#[test]
fn blue_green_switches_when_analysis_passes() {
    const MEASURING: &str = "Progressing stable=shop-v1 desired=shop-v2 weight=0";
    Sim::new(route(blue_green(None, Some(analysis())))).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            MEASURING,
            &["RolloutStarted"],
            &[V1, PREVIEW_V2],
            Some(30),
        ),
        row(
            40,
            Measure(20, 1.0, 10),
            MEASURING,
            &[],
            &[V1, PREVIEW_V2],
            Some(30),
        ),
        row(
            70,
            Measure(200, 1.0, 10),
            "Healthy stable=shop-v2 desired=shop-v2 previous=shop-v1",
            &["Promoted"],
            &[V2],
            None,
        ),
    ]);
}

#[test]
fn blue_green_auto_promotion_waits_while_analysis_is_failing() {
    const TIMED: &str = "Paused stable=shop-v1 desired=shop-v2 weight=0";
    const MEASURING: &str = "Progressing stable=shop-v1 desired=shop-v2 weight=0";
    Sim::new(route(blue_green(Some(60), Some(analysis())))).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            TIMED,
            &["RolloutStarted"],
            &[V1, PREVIEW_V2],
            Some(30),
        ),
        row(
            40,
            Measure(200, 0.5, 10),
            TIMED,
            &[],
            &[V1, PREVIEW_V2],
            Some(30),
        ),
        // The delay is over (70), but the last interval failed: no switch yet.
        row(75, Nothing, MEASURING, &[], &[V1, PREVIEW_V2], Some(30)),
        row(
            100,
            Measure(200, 1.0, 10),
            "Healthy stable=shop-v2 desired=shop-v2 previous=shop-v1",
            &["Promoted"],
            &[V2],
            None,
        ),
    ]);
}

#[test]
fn a_canary_without_match_needs_no_canary_ingress_at_weight_zero() {
    Sim::new(route(canary(vec![pause("10s"), weight(20)], None))).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            "Paused stable=shop-v1 desired=shop-v2 step=0 weight=0",
            &["RolloutStarted", "Paused"],
            &[V1],
            Some(10),
        ),
        row(
            20,
            Nothing,
            "Healthy stable=shop-v2 desired=shop-v2 previous=shop-v1 step=2",
            &["StepAdvanced", "Promoted"],
            &[V2],
            None,
        ),
    ]);
}

#[test]
fn a_canary_without_steps_switches_at_once() {
    Sim::new(route(canary(vec![], None))).play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        row(
            10,
            Backend("shop-v2"),
            "Healthy stable=shop-v2 desired=shop-v2 previous=shop-v1 step=0",
            &["RolloutStarted", "Promoted"],
            &[V2],
            None,
        ),
    ]);
}

#[test]
fn conditions_follow_the_rollout_and_move_their_time_only_on_a_flip() {
    let mut sim = Sim::new(route(example_steps()));
    let status = sim.apply(Nothing, 0).status;
    assert_eq!(
        condition(&status, PROMOTED),
        ("True".into(), "Stable".into(), 0, Some(1))
    );
    assert_eq!(condition(&status, READY).0, "True");
    let status = sim.apply(Backend("shop-v2"), 10).status;
    assert_eq!(
        condition(&status, PROMOTED),
        ("False".into(), "RolloutInProgress".into(), 10, Some(2))
    );
    assert_eq!(
        condition(&status, PROGRESSING),
        ("True".into(), "RolloutInProgress".into(), 10, Some(2))
    );
    assert_eq!(
        condition(&status, PAUSED),
        ("True".into(), "TimedPause".into(), 10, Some(2))
    );
    assert_eq!(
        condition(&status, DEGRADED),
        ("False".into(), "RolloutInProgress".into(), 0, Some(2))
    );
    assert_eq!(
        status.message.as_deref(),
        Some("step 2 of 4: pause 30s (weight 10)")
    );
    let status = sim.apply(Nothing, 40).status;
    assert_eq!(
        condition(&status, PAUSED),
        ("True".into(), "WaitingForPromote".into(), 10, Some(2))
    );
    assert_eq!(condition(&status, PROMOTED).2, 10);
    assert_eq!(
        status.message.as_deref(),
        Some("step 4 of 4: waiting for promote (weight 50)")
    );
    let status = sim.apply(Verb("promote"), 50).status;
    assert_eq!(
        condition(&status, PROMOTED),
        ("True".into(), "Stable".into(), 50, Some(2))
    );
    assert_eq!(
        condition(&status, PAUSED),
        ("False".into(), "NotPaused".into(), 50, Some(2))
    );
    assert_eq!(condition(&status, PROGRESSING).0, "False");
    assert_eq!(status.observed_generation, Some(2));
}

#[test]
fn pause_ends_at_is_in_status() {
    let mut sim = Sim::new(route(example_steps()));
    sim.apply(Nothing, 0);
    let status = sim.apply(Backend("shop-v2"), 10).status;
    assert_eq!(status.pause_ends_at.map(|t| t.0), Some(t(40)));
}

#[test]
fn an_ingress_conflict_makes_the_route_not_ready_with_one_warning() {
    let mut sim = Sim::new(route(example_steps()));
    sim.play(&[
        row(
            0,
            Conflict("shop"),
            HEALTHY_V1,
            &["Promoted", "IngressConflict"],
            &[V1],
            None,
        ),
        row(10, Conflict("shop"), HEALTHY_V1, &[], &[V1], None),
    ]);
    let ready = find(&sim.status().conditions, READY)
        .cloned()
        .expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "IngressConflict")
    );
    assert!(
        ready.message.starts_with("Ingress shop already exists"),
        "{}",
        ready.message
    );
    sim.play(&[row(
        20,
        Nothing,
        HEALTHY_V1,
        &["IngressConflictResolved"],
        &[V1],
        None,
    )]);
    assert_eq!(condition(&sim.status(), READY).0, "True");
}

#[test]
fn an_invalid_spec_changes_only_ready() {
    let mut sim = Sim::new(route(example_steps()));
    sim.apply(Nothing, 0);
    sim.apply(Backend("shop-v2"), 10);
    let before = sim.status();
    if let Some(canary) = sim.route.spec.strategy.canary.as_mut() {
        canary.steps[0] = CanaryStep::SetWeight(150);
    }
    let decision = sim.apply(Nothing, 20);
    let reasons: Vec<&str> = decision.events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["InvalidSpec"]);
    assert_eq!(decision.requeue, None);
    let ready = find(&decision.status.conditions, READY).expect("Ready");
    assert_eq!(ready.reason, "InvalidSpec");
    assert_eq!(
        ready.message,
        "invalid spec: spec.strategy.canary.steps[0].setWeight 150 is above 100"
    );
    assert_eq!(decision.status.canary_weight, before.canary_weight);
    assert_eq!(decision.status.pause_ends_at, before.pause_ends_at);
    // Only once.
    assert_eq!(sim.apply(Nothing, 30).events, []);
}

#[test]
fn each_verb_value_acts_once_and_values_present_at_first_apply_never_act() {
    let mut sim = Sim::new(route(example_steps()));
    sim.verb("promote-full", 0);
    sim.play(&[
        row(0, Nothing, HEALTHY_V1, &["Promoted"], &[V1], None),
        // The old promote-full value must not finish this rollout.
        row(
            10,
            Backend("shop-v2"),
            STEP1,
            STARTED,
            &[V1, CANARY_V2_10],
            Some(30),
        ),
        row(
            20,
            Verb("abort"),
            "Degraded stable=shop-v1 desired=shop-v2 step=1 weight=0",
            &["Aborted"],
            &[V1],
            None,
        ),
        row(
            30,
            Verb("retry"),
            STEP1,
            STARTED,
            &[V1, CANARY_V2_10],
            Some(30),
        ),
        // Same abort value as before: nothing happens.
        row(35, Nothing, STEP1, &[], &[V1, CANARY_V2_10], Some(25)),
    ]);
    let handled = sim.status().handled_actions;
    assert_eq!(
        handled.keys().collect::<Vec<_>>(),
        ["abort", "promote-full", "retry"]
    );
}

#[test]
fn abort_wins_over_a_promote_sent_together() {
    let mut sim = Sim::new(route(example_steps()));
    sim.apply(Nothing, 0);
    sim.apply(Backend("shop-v2"), 10);
    sim.verb("promote", 20);
    let decision = sim.apply(Verb("abort"), 20);
    let reasons: Vec<&str> = decision.events.iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["Aborted", "ActionIgnored"]);
    assert_eq!(
        brief(&decision.status),
        "Degraded stable=shop-v1 desired=shop-v2 step=1 weight=0"
    );
}
