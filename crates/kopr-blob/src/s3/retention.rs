//! Object-lock retention of S3 blobs, as HeadObject reports it.

use super::*;

impl S3Storage {
    /// The object-lock mode and retain-until date of a blob's current version, as HeadObject
    /// reports them (`x-amz-object-lock-mode`, `x-amz-object-lock-retain-until-date`);
    /// `None` when it is not locked.
    pub fn retention_of(&self, id: &str) -> Result<Option<(String, DateTime<Utc>)>> {
        let key = self.key(id)?;
        let resp = self
            .execute(&Req::new("HEAD", Some(&key)))
            .map_err(|f| self.error(f, "stat", id))?;
        let Some(mode) = resp.header("x-amz-object-lock-mode") else {
            return Ok(None);
        };
        let until = resp
            .header("x-amz-object-lock-retain-until-date")
            .ok_or_else(|| {
                BlobError::Other(format!(
                    "S3 stat of {id}: lock mode {mode} without a retain-until date"
                ))
            })?;
        let until = DateTime::parse_from_rfc3339(until)
            .map_err(|e| {
                BlobError::Other(format!(
                    "S3 stat of {id}: invalid retain-until date {until:?}: {e}"
                ))
            })?
            .with_timezone(&Utc);
        Ok(Some((mode.to_string(), until)))
    }
}
