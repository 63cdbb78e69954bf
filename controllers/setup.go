package controllers

import (
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
)

// SetupWithManager registers both reconcilers with the manager; the operator and the tests start
// the controllers the same way.
func SetupWithManager(mgr ctrl.Manager, opts Options, connector JetStreamConnector, clk clock.PassiveClock) error {
	if err := (&PredictionModelReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("freightcast-predictionmodel"),
		Clock:    clk,
		Options:  opts,
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&FreightPipelineReconciler{
		Client:   mgr.GetClient(),
		Recorder: mgr.GetEventRecorder("freightcast-freightpipeline"),
		Clock:    clk,
		Queue:    connector,
		Options:  opts,
	}).SetupWithManager(mgr)
}
