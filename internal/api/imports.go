package api

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"slices"
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
	fileName := "" // the multipart file's name; a raw body has none
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mediaType == "multipart/form-data" {
		mr, err := r.MultipartReader()
		if err != nil {
			WriteError(w, http.StatusBadRequest, "bad_request", "multipart body: "+err.Error())
			return
		}
		// At most one part per option and then the file, which must be
		// the last part: an upload has at most len(uploadOptions)+1 parts.
		seen := map[string]string{}
		for body = nil; body == nil; {
			part, err := mr.NextPart()
			if err == io.EOF {
				WriteError(w, http.StatusBadRequest, "bad_request", "multipart body has no \"file\" field")
				return
			}
			if err != nil {
				writeMultipartError(w, err, s.Intake.MaxBytes)
				return
			}
			name := part.FormName()
			if name == "file" {
				body = &lastPart{part: part, mr: mr}
				fileName = part.FileName()
				break
			}
			if err := checkFormPart(part, name, uploadOptions, seen); err != nil {
				writeMultipartError(w, err, s.Intake.MaxBytes)
				return
			}
			v, err := io.ReadAll(io.LimitReader(part, maxUploadOptionBytes+1))
			if err != nil {
				writeMultipartError(w, err, s.Intake.MaxBytes)
				return
			}
			if len(v) > maxUploadOptionBytes {
				WriteError(w, http.StatusBadRequest, "bad_request", "multipart field \""+name+"\" is longer than "+strconv.Itoa(maxUploadOptionBytes)+" bytes")
				return
			}
			seen[name] = string(v)
			fields[name] = string(v)
		}
	}
	opts, err := importOptions(fields["type"], fields["max_rejects"])
	if err != nil {
		WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	opts.FileName = fileName
	// Refuse what cannot be an import file before staging it or creating
	// a job: the client hears it now, not from a FAILED import later.
	body, err = ingest.Sniff(body)
	var maxErr *http.MaxBytesError
	switch {
	case errors.Is(err, ingest.ErrEmptyUpload):
		WriteError(w, http.StatusBadRequest, "empty_file", err.Error())
		return
	case errors.Is(err, errPartAfterFile):
		WriteError(w, http.StatusBadRequest, "bad_request", errPartAfterFile.Error())
		return
	case errors.Is(err, ingest.ErrNotText) || errors.Is(err, ingest.ErrNotCSVOrXML):
		WriteError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", err.Error())
		return
	case errors.As(err, &maxErr):
		WriteError(w, http.StatusRequestEntityTooLarge, "too_large",
			"file exceeds the upload limit of "+strconv.FormatInt(s.Intake.MaxBytes, 10)+" bytes")
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		WriteError(w, http.StatusRequestTimeout, "request_timeout", "the upload was not received in time")
		return
	case err != nil:
		WriteError(w, http.StatusBadRequest, "bad_request", "reading the upload: "+err.Error())
		return
	}
	job, created, err := s.Intake.Start(r.Context(), body, opts)
	switch {
	case errors.Is(err, staging.ErrTooLarge) || errors.As(err, &maxErr):
		WriteError(w, http.StatusRequestEntityTooLarge, "too_large",
			"file exceeds the upload limit of "+strconv.FormatInt(s.Intake.MaxBytes, 10)+" bytes")
		return
	case errors.Is(err, ingest.ErrBadOption):
		WriteError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	case errors.Is(err, errPartAfterFile):
		WriteError(w, http.StatusBadRequest, "bad_request", errPartAfterFile.Error())
		return
	case errors.Is(err, os.ErrDeadlineExceeded):
		WriteError(w, http.StatusRequestTimeout, "request_timeout", "the upload was not received in time")
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

// uploadOptions are the multipart fields an upload takes before its file.
var uploadOptions = []string{"type", "max_rejects"}

// writeMultipartError answers a multipart body that cannot be read: a
// refused field 400 with its message, too large 413, too slow 408.
func writeMultipartError(w http.ResponseWriter, err error, limit int64) {
	var fe *formError
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &fe):
		WriteError(w, http.StatusBadRequest, "bad_request", fe.msg)
	case errors.As(err, &tooBig), errors.Is(err, os.ErrDeadlineExceeded):
		writeBodyError(w, err, limit)
	default:
		WriteError(w, http.StatusBadRequest, "bad_request", "multipart body is malformed")
	}
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

// listImports answers GET /imports: newest first, optionally in one state,
// a page at a time.
func (s *Server) listImports(w http.ResponseWriter, r *http.Request) {
	state := r.URL.Query().Get("state")
	if r.URL.Query().Has("state") && !slices.Contains(importer.States(), state) {
		WriteError(w, http.StatusBadRequest, "bad_request", "query parameter \"state\" must be one of "+strings.Join(importer.States(), ", "))
		return
	}
	limit, cursor, ok := page(w, r)
	if !ok {
		return
	}
	var after *importer.PageKey
	if cursor != nil {
		after = &importer.PageKey{CreatedAt: cursor.CreatedAt, ImportID: cursor.ID}
	}
	jobs, next, err := importer.ListJobsPage(r.Context(), s.DB, state, limit, after)
	if err != nil {
		s.internalError(w, "list imports", err)
		return
	}
	var nc *pageCursor
	if next != nil {
		nc = &pageCursor{CreatedAt: next.CreatedAt, ID: next.ImportID}
	}
	writePage(w, "imports", jobs, nc)
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
	id, ok := jobID(w, r, "import")
	if !ok {
		return importer.Job{}, false
	}
	job, err := importer.GetJob(r.Context(), s.DB, id)
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
