//! Small CSV tables (catalogues): the records with their line numbers.

/// The records of a CSV table: fields trimmed, records of any length, `#` comment lines,
/// empty records and a first record whose first field starts with "name" (a header)
/// skipped; each record with its line number (1-based).
pub fn catalogue_records(text: &[u8]) -> Result<Vec<(u64, Vec<String>)>, csv::Error> {
    let mut rd = csv::ReaderBuilder::new()
        .has_headers(false)
        .comment(Some(b'#'))
        .trim(csv::Trim::All)
        .flexible(true)
        .from_reader(text);
    let mut out = Vec::new();
    for (k, rec) in rd.records().enumerate() {
        let rec = rec?;
        let line = rec.position().map_or(k as u64 + 1, |p| p.line());
        let f: Vec<String> = rec.iter().map(str::to_string).collect();
        let header = k == 0
            && f.first()
                .is_some_and(|x| x.to_lowercase().starts_with("name"));
        if header || f.iter().all(|x| x.is_empty()) {
            continue;
        }
        out.push((line, f));
    }
    Ok(out)
}
