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

	"github.com/freightcast/freightcast/internal/version"
)

// command runs one role until ctx is cancelled (SIGINT/SIGTERM) or it fails.
type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

var commands = map[string]command{
	"manager":   {"run the operator: the PredictionModel and FreightPipeline controllers", runManager},
	"ingest":    {"accept freight events over HTTP and queue them in NATS JetStream", runIngest},
	"infer":     {"serve a model over the Open Inference Protocol (with --worker: a pipeline's inference pool)", runInfer},
	"run":       {"run pipelines and their models on this machine, on an embedded NATS (the main job of `make run`)", runLocal},
	"nats-auth": {"issue NATS credentials: the install's operator and accounts, the operator's and each pipeline's users", runNATSAuth},
	"version":   {"print the version and exit", runVersion},
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
		fmt.Fprintf(os.Stderr, "freightcast %s: %v\n", name, err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: freightcast <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-9s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(os.Stderr, "\nRun 'freightcast <command> -h' for the flags of a command.")
}

func runVersion(_ context.Context, _ []string) error {
	fmt.Println(version.String())
	return nil
}
