package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/acme/payments/internal/export"
)

// measureExport runs the export workflow of every order as CSV through the
// serve process (POST /exports, then GET /exports/{id} until it ends),
// fetches its file, and prints its time against the dump's and whether its
// bytes are the download's (the file at downloadPath).
func (s *Stack) measureExport(ctx context.Context, out io.Writer, srv *server, downloadPath string, dump transfer, want int) error {
	c0, serve0 := s.sampleCPU(), srv.cpu()
	start := time.Now()
	id, err := s.startExport(ctx, srv)
	if err != nil {
		return err
	}
	st, err := s.waitExport(ctx, srv, id)
	if err != nil {
		return err
	}
	took := time.Since(start)
	cpu, serveCPU := s.sampleCPU().since(c0), srv.cpu()-serve0
	if st.State != export.StateCompleted {
		msg := ""
		if st.Error != nil {
			msg = ": " + *st.Error
		}
		return fmt.Errorf("export %s: %s%s", id, st.State, msg)
	}
	exportPath := filepath.Join(filepath.Dir(downloadPath), "export.csv")
	fileStart := time.Now()
	if err := s.get(ctx, srv, "/exports/"+id+"/file", exportPath); err != nil {
		return err
	}
	file := transfer{took: time.Since(fileStart)}
	if err := file.count(exportPath); err != nil {
		return err
	}
	if err := checkRows("export file", file, want); err != nil {
		return err
	}
	same, at, err := sameFile(downloadPath, exportPath)
	if err != nil {
		return err
	}
	verdict := "yes"
	if !same {
		verdict = fmt.Sprintf("no, they differ from byte %d", at)
	}
	fmt.Fprintf(out, "%-24s %9d %9.2fs %11.0f %9.1f %7.2fx   (parts %d, rows_written %d)\n", "export workflow (pii)",
		st.RowsWritten, took.Seconds(), float64(st.RowsWritten)/took.Seconds(), float64(file.bytes)/(1<<20),
		took.Seconds()/dump.took.Seconds(), st.ChunksTotal, st.RowsWritten)
	fmt.Fprintf(out, "%-24s %9d %9.2fs %11.0f %9.1f %7.2fx   (export + file; same bytes as the download: %s)\n", "GET /exports/{id}/file",
		file.rows, file.took.Seconds(), float64(file.rows)/file.took.Seconds(), float64(file.bytes)/(1<<20),
		(took+file.took).Seconds()/dump.took.Seconds(), verdict)
	stack := "this process: Temporal, worker"
	if s.worker != nil {
		stack = "this process + worker process"
	}
	fmt.Fprintf(out, "%-24s cpu seconds: export stack %.1f (%s) + serve %.1f + mysql %s\n",
		"", cpu.service.Seconds(), stack, serveCPU.Seconds(), cpu.serverText())
	return nil
}

// exportStatus is the part of GET /exports/{id} the bench reads.
type exportStatus struct {
	State       string  `json:"state"`
	RowsWritten int64   `json:"rows_written"`
	ChunksDone  int     `json:"chunks_done"`
	ChunksTotal int     `json:"chunks_total"`
	FileBytes   *int64  `json:"file_bytes"`
	Error       *string `json:"error"`
}

// startExport posts {"type":"orders","format":"csv"} to /exports and
// returns the new export's id.
func (s *Stack) startExport(ctx context.Context, srv *server) (string, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", srv.url+"/exports", strings.NewReader(`{"type":"orders","format":"csv"}`))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("POST /exports: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		return "", fmt.Errorf("POST /exports: %w", err)
	}
	if resp.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("POST /exports: status %d: %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var r struct {
		ExportID string `json:"export_id"`
	}
	if err := json.Unmarshal(b, &r); err != nil || r.ExportID == "" {
		return "", fmt.Errorf("POST /exports: answer %s: %v", b, err)
	}
	return r.ExportID, nil
}

// waitExport polls GET /exports/{id} until the export is no longer
// RUNNING. A separate worker that exits ends the wait with its status.
func (s *Stack) waitExport(ctx context.Context, srv *server, id string) (exportStatus, error) {
	var exited <-chan struct{}
	if s.worker != nil {
		exited = s.worker.exited
	}
	for {
		req, err := http.NewRequestWithContext(ctx, "GET", srv.url+"/exports/"+id, nil)
		if err != nil {
			return exportStatus{}, err
		}
		req.Header.Set("Authorization", "Bearer "+s.Token)
		resp, err := srv.http.Do(req)
		if err != nil {
			return exportStatus{}, fmt.Errorf("GET /exports/%s: %w", id, err)
		}
		var st exportStatus
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&st)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return exportStatus{}, fmt.Errorf("GET /exports/%s: status %d: %v", id, resp.StatusCode, err)
		}
		if st.State != export.StateRunning {
			return st, nil
		}
		select {
		case <-exited:
			return st, fmt.Errorf("export %s: the worker process exited: %v", id, s.worker.err)
		case <-ctx.Done():
			return st, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
