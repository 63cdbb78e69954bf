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

// SetupWithManager registers the controllers with the manager — one per kind, and the
// autoscaler beside the FreightPipeline reconciler; the operator
// and the tests start them the same way.
func SetupWithManager(mgr ctrl.Manager, opts Options, connector JetStreamConnector, clk clock.PassiveClock) error {
	restarter := func(recorder events.EventRecorder) *podRestarter {
		return &podRestarter{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: recorder, Clock: clk,
			Threshold: cmp.Or(opts.StuckPodThreshold, defaultStuckPodThreshold), Interval: cmp.Or(opts.StuckPodInterval, defaultStuckPodInterval)}
	}
	models, err := metrics.NewModels(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	if err := mgr.Add(registeredWhileLeading{reg: ctrlmetrics.Registry, collector: NewConditionCollector(mgr.GetCache())}); err != nil {
		return err
	}
	if err := mgr.Add(registeredWhileLeading{reg: ctrlmetrics.Registry, collector: &capacityCollector{reader: mgr.GetClient(), queue: connector, opts: opts}}); err != nil {
		return err
	}
	modelRecorder := mgr.GetEventRecorder("freightcast-predictionmodel")
	if err := (&PredictionModelReconciler{
		Client:    mgr.GetClient(),
		Recorder:  modelRecorder,
		Clock:     clk,
		APIReader: mgr.GetAPIReader(),
		Options:   opts,
		Metrics:   models,
		restarter: restarter(modelRecorder),
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	m, err := metrics.NewAutoscaling(ctrlmetrics.Registry)
	if err != nil {
		return err
	}
	recorder := mgr.GetEventRecorder("freightcast-freightpipeline")
	if err := (&FreightPipelineReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  recorder,
		Clock:     clk,
		Queue:     connector,
		Options:   opts,
		restarter: restarter(recorder),
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	return (&AutoscalerReconciler{
		Client:      mgr.GetClient(),
		APIReader:   mgr.GetAPIReader(),
		Queue:       connector,
		Recorder:    mgr.GetEventRecorder("freightcast-autoscaler"),
		Clock:       clk,
		Metrics:     m,
		Options:     opts,
		Concurrency: autoscalerConcurrency,
	}).SetupWithManager(mgr)
}
