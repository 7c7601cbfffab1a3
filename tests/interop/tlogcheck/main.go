// Command tlogcheck verifies partsledger checkpoints and Merkle proofs with
// Go's independent implementations: golang.org/x/mod/sumdb/note for the C2SP
// signed notes and golang.org/x/mod/sumdb/tlog for RFC 6962 proofs.
//
// It reads one JSON document on stdin:
//
//	{
//	  "vkey": "<name>+<hex key hash>+<base64(0x01 || public key)>",
//	  "origin": "<expected origin>",            (optional)
//	  "checkpoints": ["<signed note>", ...],
//	  "inclusion": [{"leaf_hash": b64, "index": i, "tree_size": n, "proof": [b64, ...]}],
//	  "consistency": [{"old_size": m, "new_size": n, "old_root": b64, "new_root": b64, "proof": [b64, ...]}]
//	}
//
// Every checkpoint is opened with note.Open and its body parsed as a C2SP
// tlog-checkpoint. An inclusion proof is checked with tlog.CheckRecord
// against the root of the verified checkpoint of the same tree size, so
// every inclusion item needs such a checkpoint. A consistency proof is
// checked with tlog.CheckTree against the roots given; where a verified
// checkpoint of either size exists, its root must equal the given root.
//
// Proof order: tlog.RecordProof and tlog.TreeProof use the RFC 6962 §2.1.1
// and §2.1.2 PATH and SUBPROOF order, the same as RFC 9162 §2.1.3 and
// §2.1.4 (the hash nearest the leaf, or the old tree, comes first; the
// sibling of the root's children comes last). The Python side emits RFC 9162
// order, so no conversion happens here.
//
// It prints a JSON report on stdout and exits 0 if everything verified,
// 1 if anything failed to verify, 2 if the input could not be read.
//
// Build offline in GOPATH mode, with Debian's golang-golang-x-mod-dev:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode GOPROXY=off go build -o tlogcheck .
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

type inclusionItem struct {
	LeafHash string   `json:"leaf_hash"`
	Index    int64    `json:"index"`
	TreeSize int64    `json:"tree_size"`
	Proof    []string `json:"proof"`
}

type consistencyItem struct {
	OldSize int64    `json:"old_size"`
	NewSize int64    `json:"new_size"`
	OldRoot string   `json:"old_root"`
	NewRoot string   `json:"new_root"`
	Proof   []string `json:"proof"`
}

type input struct {
	Vkey        string            `json:"vkey"`
	Origin      *string           `json:"origin"`
	Checkpoints []string          `json:"checkpoints"`
	Inclusion   []inclusionItem   `json:"inclusion"`
	Consistency []consistencyItem `json:"consistency"`
}

type result struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

type checkpointResult struct {
	result
	Origin string `json:"origin,omitempty"`
	Size   int64  `json:"size"`
	Root   string `json:"root,omitempty"`
}

type report struct {
	OK          bool               `json:"ok"`
	Error       string             `json:"error,omitempty"`
	Checkpoints []checkpointResult `json:"checkpoints"`
	Inclusion   []result           `json:"inclusion"`
	Consistency []result           `json:"consistency"`
}

type checkpoint struct {
	origin string
	size   int64
	root   tlog.Hash
}

// parseCheckpoint parses a C2SP tlog-checkpoint note text:
// origin, decimal size without leading zeros, base64 root, optional non-empty extension lines.
func parseCheckpoint(text string) (checkpoint, error) {
	if !strings.HasSuffix(text, "\n") {
		return checkpoint{}, errors.New("checkpoint body does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) < 3 {
		return checkpoint{}, errors.New("checkpoint body has fewer than three lines")
	}
	if lines[0] == "" {
		return checkpoint{}, errors.New("empty origin")
	}
	sizeText := lines[1]
	size, err := strconv.ParseInt(sizeText, 10, 64)
	if err != nil || size < 0 || strconv.FormatInt(size, 10) != sizeText {
		return checkpoint{}, fmt.Errorf("malformed tree size %q", sizeText)
	}
	root, err := tlog.ParseHash(lines[2])
	if err != nil {
		return checkpoint{}, fmt.Errorf("malformed root hash %q", lines[2])
	}
	for _, ext := range lines[3:] {
		if ext == "" {
			return checkpoint{}, errors.New("empty extension line")
		}
	}
	return checkpoint{origin: lines[0], size: size, root: root}, nil
}

func parseHashes(items []string) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, 0, len(items))
	for i, item := range items {
		h, err := tlog.ParseHash(item)
		if err != nil {
			return nil, fmt.Errorf("proof[%d]: %v", i, err)
		}
		out = append(out, h)
	}
	return out, nil
}

func fail(rep *report, code int, msg string) {
	rep.OK = false
	rep.Error = msg
	emit(rep)
	os.Exit(code)
}

func emit(rep *report) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(rep); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
}

func main() {
	rep := &report{OK: true, Checkpoints: []checkpointResult{}, Inclusion: []result{}, Consistency: []result{}}

	var in input
	dec := json.NewDecoder(os.Stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		fail(rep, 2, "reading input: "+err.Error())
	}
	verifier, err := note.NewVerifier(in.Vkey)
	if err != nil {
		fail(rep, 2, "verifier key: "+err.Error())
	}
	known := note.VerifierList(verifier)

	verified := map[int64]tlog.Hash{}
	for _, msg := range in.Checkpoints {
		var cr checkpointResult
		n, err := note.Open([]byte(msg), known)
		if err == nil {
			var cp checkpoint
			cp, err = parseCheckpoint(n.Text)
			if err == nil && in.Origin != nil && cp.origin != *in.Origin {
				err = fmt.Errorf("origin %q is not %q", cp.origin, *in.Origin)
			}
			if err == nil {
				if prev, dup := verified[cp.size]; dup && prev != cp.root {
					err = fmt.Errorf("two checkpoints of size %d with different roots", cp.size)
				}
			}
			if err == nil {
				verified[cp.size] = cp.root
				cr.Origin, cr.Size, cr.Root = cp.origin, cp.size, cp.root.String()
			}
		}
		cr.OK = err == nil
		if err != nil {
			cr.Error = err.Error()
			rep.OK = false
		}
		rep.Checkpoints = append(rep.Checkpoints, cr)
	}

	for i, item := range in.Inclusion {
		err := func() error {
			root, ok := verified[item.TreeSize]
			if !ok {
				return fmt.Errorf("no verified checkpoint of size %d", item.TreeSize)
			}
			leaf, err := tlog.ParseHash(item.LeafHash)
			if err != nil {
				return fmt.Errorf("leaf_hash: %v", err)
			}
			proof, err := parseHashes(item.Proof)
			if err != nil {
				return err
			}
			return tlog.CheckRecord(tlog.RecordProof(proof), item.TreeSize, root, item.Index, leaf)
		}()
		r := result{OK: err == nil}
		if err != nil {
			r.Error = fmt.Sprintf("inclusion[%d] (index %d, size %d): %v", i, item.Index, item.TreeSize, err)
			rep.OK = false
		}
		rep.Inclusion = append(rep.Inclusion, r)
	}

	for i, item := range in.Consistency {
		err := func() error {
			oldRoot, err := tlog.ParseHash(item.OldRoot)
			if err != nil {
				return fmt.Errorf("old_root: %v", err)
			}
			newRoot, err := tlog.ParseHash(item.NewRoot)
			if err != nil {
				return fmt.Errorf("new_root: %v", err)
			}
			if r, ok := verified[item.OldSize]; ok && r != oldRoot {
				return fmt.Errorf("old_root differs from the verified checkpoint of size %d", item.OldSize)
			}
			if r, ok := verified[item.NewSize]; ok && r != newRoot {
				return fmt.Errorf("new_root differs from the verified checkpoint of size %d", item.NewSize)
			}
			proof, err := parseHashes(item.Proof)
			if err != nil {
				return err
			}
			return tlog.CheckTree(tlog.TreeProof(proof), item.NewSize, newRoot, item.OldSize, oldRoot)
		}()
		r := result{OK: err == nil}
		if err != nil {
			r.Error = fmt.Sprintf("consistency[%d] (%d -> %d): %v", i, item.OldSize, item.NewSize, err)
			rep.OK = false
		}
		rep.Consistency = append(rep.Consistency, r)
	}

	emit(rep)
	if !rep.OK {
		os.Exit(1)
	}
}
