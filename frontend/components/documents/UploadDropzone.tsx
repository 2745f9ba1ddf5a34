"use client";

import { useId, useRef, useState, type DragEvent, type FormEvent } from "react";
import { uploadDocument } from "@/lib/api";
import { messageOf } from "@/lib/errors";

interface Upload {
  name: string;
  progress: number;
  error?: string;
}

/** Drop PDFs here or pick them, then "Upload": each shows its progress. */
export function UploadDropzone({ onUploaded }: { onUploaded: () => void }) {
  const inputId = useId();
  const input = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);
  const [uploads, setUploads] = useState<Upload[]>([]);
  const [pickError, setPickError] = useState<string | null>(null);

  async function send(files: File[]) {
    const pdfs = files.filter((f) => f.type === "application/pdf" || f.name.toLowerCase().endsWith(".pdf"));
    if (!pdfs.length) {
      setPickError("Choose one or more PDF files.");
      return;
    }
    setPickError(null);
    setUploads(pdfs.map((f) => ({ name: f.name, progress: 0 })));
    await Promise.all(
      pdfs.map(async (file, i) => {
        const update = (patch: Partial<Upload>) =>
          setUploads((list) => list.map((u, j) => (j === i ? { ...u, ...patch } : u)));
        try {
          await uploadDocument(file, (progress) => update({ progress }));
          update({ progress: 1 });
        } catch (error) {
          update({ error: messageOf(error) });
        }
        onUploaded();
      }),
    );
    if (input.current) input.current.value = "";
  }

  function onDrop(event: DragEvent) {
    event.preventDefault();
    setOver(false);
    void send(Array.from(event.dataTransfer.files));
  }

  function onSubmit(event: FormEvent) {
    event.preventDefault();
    void send(Array.from(input.current?.files ?? []));
  }

  return (
    <form onSubmit={onSubmit} className={`dropzone${over ? " over" : ""}`}
      onDragOver={(e) => { e.preventDefault(); setOver(true); }}
      onDragLeave={() => setOver(false)} onDrop={onDrop}>
      <p>Drop PDF files here, or choose them:</p>
      <label htmlFor={inputId}>PDF files</label>
      <input id={inputId} ref={input} type="file" accept="application/pdf,.pdf" multiple
        aria-describedby={pickError ? `${inputId}-error` : undefined} aria-invalid={pickError ? true : undefined} />
      {pickError && <p id={`${inputId}-error`} className="field-error">{pickError}</p>}
      <button type="submit" className="primary">Upload</button>
      <ul className="list" aria-live="polite" aria-label="Uploads">
        {uploads.map((u) => (
          <li key={u.name}>
            {u.name}:{" "}
            {u.error ? (
              <span className="field-error">{u.error}</span>
            ) : (
              <>
                <progress value={u.progress} max={1} aria-label={`Uploading ${u.name}`} />{" "}
                {u.progress >= 1 ? "uploaded" : `${Math.round(u.progress * 100)} %`}
              </>
            )}
          </li>
        ))}
      </ul>
    </form>
  );
}
