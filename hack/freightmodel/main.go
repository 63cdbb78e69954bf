// Command freightmodel generates the synthetic freight-event data set, trains the freight
// delay-risk MLP on it and writes models/freight-delay-risk.onnx, the sample infer request next
// to it, and the evaluation that docs/model.md records. The same seed always gives the same
// bytes.
package main

import (
	"flag"
	"fmt"
	"os"
)

func main() {
	out := flag.String("out", "models/freight-delay-risk.onnx", "where to write the ONNX model")
	req := flag.String("request", "models/freight-delay-risk.request.json", "where to write the sample infer request")
	seed := flag.Uint64("seed", DefaultConfig.Seed, "random seed of data generation and training")
	flag.Parse()
	cfg := DefaultConfig
	cfg.Seed = *seed
	r, err := Generate(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "freightmodel:", err)
		os.Exit(1)
	}
	for path, data := range map[string][]byte{*out: r.ONNX, *req: r.Request} {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "freightmodel:", err)
			os.Exit(1)
		}
	}
	fmt.Print(r.Report())
}
