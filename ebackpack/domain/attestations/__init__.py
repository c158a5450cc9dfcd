"""External attestations: what an upload's bytes are (`sniff`), why an upload is refused
(`errors.ImportRejected`), and the normalized record an import produces (`record.Attestation`, with its
reasons in Polish from `reasons_pl`). Pure: shared by the backpack, which receives uploads and shows
records, and the importer, which reads uploads and writes records."""
