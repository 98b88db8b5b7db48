package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/acme/payments/internal/importer"
	"github.com/acme/payments/internal/ingest"
	"github.com/acme/payments/internal/records"
	"github.com/acme/payments/internal/staging"
	"github.com/acme/payments/workflows"
)

// uploadResponse is POST /upload's answer.
type uploadResponse struct {
	ImportID   string `json:"import_id"`
	WorkflowID string `json:"workflow_id"`
	StatusURL  string `json:"status_url"`
}

// upload streams a multipart field "file" or a raw CSV/XML body into the
// staging store and starts its import: 202 for a new import, 200 with the
// existing one for the same content and options.
func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	// Options come from the query string; form fields sent before the
	// file part override them.
	fields := map[string]string{"type": r.URL.Query().Get("type"), "max_rejects": r.URL.Query().Get("max_rejects")}
	r.Body = http.MaxBytesReader(w, r.Body, s.Intake.MaxBytes+1<<20)
	body := io.Reader(r.Body)
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "multipart/form-data" {
		mr, err := r.MultipartReader()
		if err != nil {
			WriteError(w, http.StatusBadRequest, "bad_request", "multipart body: "+err.Error())
			return
		}
		for body = nil; body == nil; {
			part, err := mr.NextPart()
			if err != nil {
				WriteError(w, http.StatusBadRequest, "bad_request", "multipart body has no \"file\" field")
				return
			}
			switch name := part.FormName(); name {
			case "file":
				body = part
			case "type", "max_rejects":
				v, _ := io.ReadAll(io.LimitReader(part, 64))
				fields[name] = string(v)
			}
		}
	}
	opts, err := importOptions(fields["type"], fields["max_rejects"])
	if err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	job, created, err := s.Intake.Start(r.Context(), body, opts)
	var maxErr *http.MaxBytesError
	switch {
	case errors.Is(err, staging.ErrTooLarge) || errors.As(err, &maxErr):
		WriteError(w, http.StatusRequestEntityTooLarge, "too_large",
			"file exceeds the upload limit of "+strconv.FormatInt(s.Intake.MaxBytes, 10)+" bytes")
		return
	case errors.Is(err, ingest.ErrBadOption):
		WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	case err != nil:
		s.Logger.Error("upload failed", "error", err.Error())
		WriteError(w, http.StatusInternalServerError, "internal", "upload failed")
		return
	}
	status := http.StatusAccepted
	if !created {
		status = http.StatusOK
	}
	WriteJSON(w, status, uploadResponse{ImportID: job.ImportID, WorkflowID: job.WorkflowID, StatusURL: "/imports/" + job.ImportID})
}

func importOptions(typ, maxRejects string) (ingest.Options, error) {
	o := ingest.Options{MaxRejects: importer.DefaultMaxRejects}
	var err error
	if o.Kind, err = records.ParseKind(strings.TrimSpace(typ)); err != nil {
		return o, err
	}
	if maxRejects != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(maxRejects), 10, 64)
		if err != nil || n < 0 {
			return o, errors.New("max_rejects must be a whole number, 0 or more")
		}
		o.MaxRejects = n
	}
	return o, nil
}

func (s *Server) listImports(w http.ResponseWriter, r *http.Request) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			WriteError(w, http.StatusBadRequest, "bad_request", "limit must be 1..1000")
			return
		}
		limit = n
	}
	jobs, err := importer.ListJobs(r.Context(), s.DB, limit)
	if err != nil {
		s.internalError(w, "list imports", err)
		return
	}
	WriteJSON(w, http.StatusOK, map[string]any{"imports": jobs})
}

func (s *Server) getImport(w http.ResponseWriter, r *http.Request) {
	job, ok := s.job(w, r)
	if ok {
		WriteJSON(w, http.StatusOK, job)
	}
}

func (s *Server) importRejects(w http.ResponseWriter, r *http.Request) {
	job, ok := s.job(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="rejects-`+job.ImportID+`.csv"`)
	if err := importer.WriteRejectsCSV(r.Context(), s.DB, job.ImportID, w); err != nil {
		s.Logger.Error("write rejects", "import_id", job.ImportID, "error", err.Error())
	}
}

func (s *Server) cancelImport(w http.ResponseWriter, r *http.Request) {
	job, ok := s.job(w, r)
	if !ok {
		return
	}
	if job.State != importer.StateRunning {
		WriteError(w, http.StatusConflict, "conflict", "import is "+job.State+", not RUNNING")
		return
	}
	if err := ingest.Cancel(r.Context(), s.Temporal, job.ImportID); err != nil {
		s.internalError(w, "cancel import", err)
		return
	}
	WriteJSON(w, http.StatusAccepted, map[string]string{"import_id": job.ImportID, "workflow_id": workflows.ImportWorkflowID(job.ImportID), "state": "CANCELLING"})
}

func (s *Server) job(w http.ResponseWriter, r *http.Request) (importer.Job, bool) {
	job, err := importer.GetJob(r.Context(), s.DB, r.PathValue("id"))
	if errors.Is(err, importer.ErrJobNotFound) {
		WriteError(w, http.StatusNotFound, "not_found", "no import "+strconv.Quote(r.PathValue("id")))
		return job, false
	}
	if err != nil {
		s.internalError(w, "read import", err)
		return job, false
	}
	return job, true
}

func (s *Server) internalError(w http.ResponseWriter, what string, err error) {
	s.Logger.Error(what, "error", err.Error())
	WriteError(w, http.StatusInternalServerError, "internal", what+" failed")
}
