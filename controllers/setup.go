package controllers

import (
	"cmp"

	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/freightcast/freightcast/internal/metrics"
)

// autoscalerConcurrency bounds the queue-depth reads in flight: enough that a slow NATS server
// does not delay the other pipelines' samples, few enough not to flood it.
const autoscalerConcurrency = 16

// SetupWithManager registers both reconcilers and the autoscaler with the manager; the operator
// and the tests start them the same way.
func SetupWithManager(mgr ctrl.Manager, opts Options, connector JetStreamConnector, clk clock.WithTicker) error {
	restarter := func(recorder events.EventRecorder) *podRestarter {
		return &podRestarter{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: recorder, Clock: clk,
			Threshold: cmp.Or(opts.StuckPodThreshold, defaultStuckPodThreshold), Interval: cmp.Or(opts.StuckPodInterval, defaultStuckPodInterval)}
	}
	resources, err := metrics.NewResources(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	modelRecorder := mgr.GetEventRecorder("freightcast-predictionmodel")
	if err := (&PredictionModelReconciler{
		Client:    mgr.GetClient(),
		Recorder:  modelRecorder,
		Clock:     clk,
		Options:   opts,
		Metrics:   resources,
		restarter: restarter(modelRecorder),
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	m, err := metrics.NewAutoscaling(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	recorder := mgr.GetEventRecorder("freightcast-freightpipeline")
	return (&FreightPipelineReconciler{
		Client:    mgr.GetClient(),
		Recorder:  recorder,
		Clock:     clk,
		Queue:     connector,
		APIReader: mgr.GetAPIReader(),
		Options:   opts,
		Metrics:   resources,
		restarter: restarter(recorder),
		Autoscaler: &Autoscaler{Client: mgr.GetClient(), Queue: connector, Recorder: recorder, Clock: clk,
			Metrics: m, Concurrency: autoscalerConcurrency, StallGrace: cmp.Or(opts.QueueStallGrace, defaultQueueStallGrace)},
	}).SetupWithManager(mgr)
}
