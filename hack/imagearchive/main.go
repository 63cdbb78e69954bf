// Command imagearchive packs static binaries into a single-layer container image, written as a
// docker-archive tar that `ctr images import` (and `docker load`) accept.
//
// The test cluster has no registry and this machine has no Docker engine, but an image is only a
// layer tarball plus two JSON documents: that is all this writes. Timestamps are fixed and entries
// sorted, so the same inputs give the same image digest.
//
//	go run ./hack/imagearchive -o out.tar -ref freightcast.local/freightcast:dev \
//	    -entrypoint /freightcast -user 65532:65532 bin/freightcast:/freightcast
package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"
)

// epoch is the fixed modification time of every entry, for reproducible digests.
var epoch = time.Unix(0, 0).UTC()

type file struct {
	src, dst string
}

type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "imagearchive:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("imagearchive", flag.ContinueOnError)
	out := fs.String("o", "", "output tar file")
	ref := fs.String("ref", "", "image reference (name:tag)")
	entrypoint := fs.String("entrypoint", "", "entrypoint, one absolute path")
	user := fs.String("user", "65532:65532", "user:group the image runs as")
	var env, cmd stringList
	fs.Var(&env, "env", "KEY=VALUE environment entry (repeatable)")
	fs.Var(&cmd, "cmd", "default argument (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" || *ref == "" || *entrypoint == "" || fs.NArg() == 0 {
		return errors.New("usage: imagearchive -o OUT -ref NAME:TAG -entrypoint /PATH SRC:/DST ...")
	}
	if !strings.Contains(path.Base(*ref), ":") {
		return fmt.Errorf("-ref %q needs an explicit tag", *ref)
	}
	var files []file
	for _, a := range fs.Args() {
		src, dst, ok := strings.Cut(a, ":")
		if !ok || !path.IsAbs(dst) || path.Clean(dst) != dst || dst == "/" {
			return fmt.Errorf("file %q must be SRC:/ABSOLUTE/DST", a)
		}
		files = append(files, file{src: src, dst: dst})
	}
	layer, err := buildLayer(files)
	if err != nil {
		return err
	}
	return writeArchive(*out, *ref, layer, imageConfig(layer, *entrypoint, *user, env, cmd))
}

// buildLayer returns an uncompressed layer tar holding the files, their parent directories and a
// world-writable /tmp. The images run as a numeric user, so they need no user database.
func buildLayer(files []file) ([]byte, error) {
	dirs := map[string]bool{"tmp": true}
	for _, f := range files {
		for d := path.Dir(f.dst); d != "/"; d = path.Dir(d) {
			dirs[strings.TrimPrefix(d, "/")] = true
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range names {
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].dst < files[j].dst })
	for _, f := range files {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return nil, err
		}
		st, err := os.Stat(f.src)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: strings.TrimPrefix(f.dst, "/"), Mode: int64(st.Mode().Perm()),
			Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// imageConfig is the OCI/Docker image configuration document.
func imageConfig(layer []byte, entrypoint, user string, env, cmd []string) []byte {
	cfg := map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"created":      epoch.Format(time.RFC3339),
		"config": map[string]any{
			"Entrypoint": []string{entrypoint},
			"Cmd":        cmd,
			"Env":        append([]string{"PATH=/"}, env...),
			"User":       user,
			"WorkingDir": "/",
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{digest(layer)}},
	}
	b, _ := json.Marshal(cfg)
	return b
}

// writeArchive writes the docker-archive layout: manifest.json, the config blob and the layer.
func writeArchive(out, ref string, layer, config []byte) error {
	cfgName := strings.TrimPrefix(digest(config), "sha256:") + ".json"
	layerName := strings.TrimPrefix(digest(layer), "sha256:") + "/layer.tar"
	manifest, _ := json.Marshal([]map[string]any{{
		"Config": cfgName, "RepoTags": []string{ref}, "Layers": []string{layerName},
	}})
	tmp := out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, e := range []struct {
		name string
		data []byte
	}{{cfgName, config}, {layerName, layer}, {"manifest.json", manifest}} {
		if dir := path.Dir(e.name); dir != "." {
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755, ModTime: epoch}); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: e.name, Mode: 0o644, Size: int64(len(e.data)), ModTime: epoch}); err != nil {
			return err
		}
		if _, err := io.Copy(tw, bytes.NewReader(e.data)); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}
