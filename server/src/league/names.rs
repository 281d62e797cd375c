//! Display names of board members: students (nicknames, shown only inside their class and
//! club), classes, schools and clubs. Cached per node; names change rarely, and a stale name
//! on a board is harmless.

use std::collections::HashMap;

use crate::store::{Db, IdList, query};
use dashmap::DashMap;
use uuid::Uuid;

use crate::error::ApiResult;

/// The name cache.
#[derive(Default)]
pub struct Names {
    cache: DashMap<Uuid, String>,
}

impl Names {
    /// Names of `ids`, from the cache or the database; unknown ids are left out.
    pub async fn resolve(&self, db: &Db, ids: &[Uuid]) -> ApiResult<HashMap<Uuid, String>> {
        let mut found = HashMap::with_capacity(ids.len());
        let mut missing = Vec::new();
        for id in ids {
            match self.cache.get(id) {
                Some(n) => {
                    found.insert(*id, n.clone());
                }
                None => missing.push(*id),
            }
        }
        if !missing.is_empty() {
            let wanted = db.dialect().in_ids("id", "$1");
            let rows: Vec<(Uuid, String)> = query(format!(
                "SELECT id, nickname FROM students WHERE {wanted} \
                 UNION ALL SELECT id, CAST(grade AS TEXT) || '年级' || name FROM classes WHERE {wanted} \
                 UNION ALL SELECT id, name FROM schools WHERE {wanted} \
                 UNION ALL SELECT id, name FROM clubs WHERE {wanted}",
            ))
            .bind(missing.into_iter().collect::<IdList>())
            .fetch_all(db)
            .await?;
            for (id, name) in rows {
                self.cache.insert(id, name.clone());
                found.insert(id, name);
            }
        }
        Ok(found)
    }

    /// Forgets a name (after a rename or removal).
    pub fn forget(&self, id: Uuid) {
        self.cache.remove(&id);
    }
}
