/** A form-level error, announced when it appears. */
export function FormError({ message }: { message?: string | null }) {
  return (
    <div role="alert" aria-live="assertive" className={message ? "form-error" : undefined}>
      {message}
    </div>
  );
}
