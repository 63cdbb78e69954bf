// Command freightcast is the one binary of Freightcast: the operator and every data-plane role.
// The operator starts data-plane pods from its own image, so operator and data plane never skew.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/freightcast/freightcast/internal/modelcheck"
	"github.com/freightcast/freightcast/internal/version"
)

// command runs one role until ctx is cancelled (SIGINT/SIGTERM) or it fails.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{
	"manager":     {"run the operator: the PredictionModel and FreightPipeline controllers", runManager},
	"ingest":      {"accept freight events over HTTP and queue them in NATS JetStream", runIngest},
	"infer":       {"serve a model over the Open Inference Protocol (with --worker: a pipeline's inference pool)", runInfer},
	"fetch-model": {"download a model (--model-uri, --model-sha256) into a file: the init container of a PredictionModel's spec.runtime", runFetchModel},
	"report":      {"serve a pipeline's reports to its clients from the predictions stream (its reporting role)", runReport},
	"run":         {"run pipelines and their models on this machine, on an embedded NATS (the main job of `make run`)", runLocal},
	"nats-auth":   {"issue NATS credentials: the install's operator and accounts, the operator's and each pipeline's users", runNATSAuth},
	"version":     {"print the version and exit", runVersion},
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	name := os.Args[1]
	cmd, ok := commands[name]
	if !ok {
		if name != "-h" && name != "--help" && name != "help" {
			fmt.Fprintf(os.Stderr, "freightcast: unknown command %q\n\n", name)
		}
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.run(ctx, os.Args[2:]); err != nil && !errors.Is(err, flag.ErrHelp) {
		msg := fmt.Sprintf("freightcast %s: %v", name, err)
		fmt.Fprintln(os.Stderr, msg)
		writeTerminationMessage(terminationLog, msg)
		os.Exit(exitCode(err))
	}
}

// terminationLog is where Kubernetes reads a container's termination message (the pod spec's
// default terminationMessagePath). The operator reports it in the model's conditions.
const terminationLog = "/dev/termination-log"

// maxTerminationMessage is what the kubelet keeps of a termination message.
const maxTerminationMessage = 4096

// writeTerminationMessage writes a fatal error where the kubelet reads it, when the file exists:
// outside a pod there is none, and nothing is created.
func writeTerminationMessage(path, msg string) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if len(msg) > maxTerminationMessage {
		msg = msg[:maxTerminationMessage-3] + "..."
	}
	_, _ = f.WriteString(msg)
}

// exitCode is modelcheck.ExitUnloadable for a model that cannot serve (no restart helps), 1 for
// any other failure.
func exitCode(err error) int {
	if modelcheck.AsUnloadable(err) != nil {
		return modelcheck.ExitUnloadable
	}
	return 1
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: freightcast <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'freightcast <command> -h' for the flags of a command.")
}

func runVersion(_ context.Context, _ []string) error {
	fmt.Println(version.String())
	return nil
}
