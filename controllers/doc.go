// Package controllers holds the operator: one reconciler per Freightcast kind and the autoscaler
// controller beside the FreightPipeline one, the pure functions that build their children and set
// their conditions, and the manager set-up they share (SetupWithManager, NewCache).
package controllers
