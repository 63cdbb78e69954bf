// Package autoscale recommends how many inference workers a pipeline needs from the depth of its
// queue. It is pure: no Kubernetes or NATS, no goroutines, and time comes in with each sample, so
// the operator owns the clock and tests replay any history they like.
//
// The rules follow the HorizontalPodAutoscaler v2 wherever it has one, because users already know
// how an HPA behaves and compare us with KEDA, whose NATS scaler drives an HPA. In the order a
// Recommender applies them:
//
//  1. A failed read (Input.LagErr, or a negative depth) is never read as 0 or as infinite: the
//     pool holds its size. After Policy.FailureThreshold failures in a row it goes to
//     Policy.FallbackReplicas when set (Decision.Fallback), also from zero replicas (KEDA leaves a
//     pool at zero). A successful read resets the count; failed reads are not recorded as
//     recommendations.
//  2. A current size outside [MinReplicas, MaxReplicas] goes straight to the nearest bound, as the
//     HPA does: no sample is needed to know it is wrong (Decision.Bounds says so).
//  3. At zero replicas the pool stays at zero until the depth exceeds Policy.ActivationThreshold.
//  4. The need is depth / TargetPerReplica replicas; with Policy.DrainTarget set and a measured
//     throughput it is depth / (throughput × drain seconds) instead, so the backlog clears within
//     the deadline however fast the model is. The recommendation is the need rounded up, so any
//     queued event wants a worker and only an empty queue recommends zero.
//  5. Tolerance: while |need/capacity − 1| ≤ Policy.Tolerance the pool keeps its size. Capacity is
//     the current replicas for a scale-down but only the ready ones for a scale-up: pods still
//     starting serve nothing, so they must not keep a growing backlog inside the dead band.
//  6. The recommendation is clamped to [MinReplicas, MaxReplicas].
//  7. Stabilization: a scale-up goes no higher than the lowest recommendation in the scale-up
//     window, a scale-down no lower than the highest in the scale-down window (the most
//     conservative wins). A new Recommender counts the current size as a recommendation made now,
//     so an operator restart does not forget the window and shrink the pool at once.
//  8. Leaving zero (step 3 passed) goes to at least one replica even if the scale-up window still
//     remembers zeros; the window and rate policies govern the growth after that.
//  9. Rate policies limit the change relative to the size at the start of each policy's period,
//     counted from the changes this Recommender decided; Select Max takes the policy allowing the
//     biggest change, Min the smallest, Disabled forbids the direction.
//
// Scale to zero therefore needs MinReplicas 0 and an empty queue for the whole scale-down window.
package autoscale
