//! Sets of completion indexes as ordered, merged intervals, written like `status.completedIndexes` ("1,3-5").

use std::fmt;

/// Disjoint, non-adjacent, ascending closed intervals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Intervals(Vec<(u32, u32)>);

impl Intervals {
    /// Reads an interval string, keeping only indexes below `completions`
    /// and skipping malformed parts, as upstream does with a status written
    /// by someone else.
    pub fn parse(text: &str, completions: u32) -> Intervals {
        let mut indexes = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (first, last) = match part.split_once('-') {
                Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
                    (Ok(a), Ok(b)) if a <= b => (a, b),
                    _ => continue,
                },
                None => match part.parse::<u32>() {
                    Ok(a) => (a, a),
                    Err(_) => continue,
                },
            };
            if first >= completions {
                continue;
            }
            let last = last.min(completions.saturating_sub(1));
            indexes.push((first, last));
        }
        let mut intervals = Intervals::default();
        for (first, last) in indexes {
            intervals.insert_range(first, last);
        }
        intervals
    }

    pub fn from_indexes(indexes: impl IntoIterator<Item = u32>) -> Intervals {
        let mut intervals = Intervals::default();
        for index in indexes {
            intervals.insert(index);
        }
        intervals
    }

    pub fn insert(&mut self, index: u32) {
        self.insert_range(index, index);
    }

    fn insert_range(&mut self, first: u32, last: u32) {
        let mut merged = (first, last);
        let mut out = Vec::with_capacity(self.0.len() + 1);
        let mut placed = false;
        for &(a, b) in &self.0 {
            if b.saturating_add(1) < merged.0 {
                out.push((a, b));
            } else if merged.1.saturating_add(1) < a {
                if !placed {
                    out.push(merged);
                    placed = true;
                }
                out.push((a, b));
            } else {
                merged = (merged.0.min(a), merged.1.max(b));
            }
        }
        if !placed {
            out.push(merged);
        }
        out.sort_unstable();
        self.0 = out;
    }

    pub fn contains(&self, index: u32) -> bool {
        self.0.iter().any(|&(a, b)| a <= index && index <= b)
    }

    /// How many indexes the set holds.
    pub fn total(&self) -> u32 {
        self.0.iter().map(|&(a, b)| b - a + 1).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().flat_map(|&(a, b)| a..=b)
    }
}

impl fmt::Display for Intervals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(a, b)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            // Two neighbours are listed, longer runs are ranges ("0,1" but "0-2").
            match b - a {
                0 => write!(f, "{a}")?,
                1 => write!(f, "{a},{b}")?,
                _ => write!(f, "{a}-{b}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indexes_are_written_as_merged_ascending_intervals() {
        for (indexes, expected) in [
            (vec![], ""),
            (vec![0], "0"),
            (vec![1, 3, 4, 5], "1,3-5"),
            (vec![5, 4, 3, 1], "1,3-5"),
            (vec![0, 1, 2, 7, 9, 8], "0-2,7-9"),
            (vec![2, 2, 2], "2"),
            (vec![1, 3, 2], "1-3"),
            (vec![4, 5], "4,5"),
            (vec![0, 1, 3, 4, 5], "0,1,3-5"),
        ] {
            assert_eq!(
                Intervals::from_indexes(indexes.clone()).to_string(),
                expected,
                "{indexes:?}"
            );
        }
    }

    #[test]
    fn parsing_keeps_indexes_below_completions_and_skips_garbage() {
        let parsed = Intervals::parse("1,3-5,x,7-2,8-12", 10);
        assert_eq!(parsed.to_string(), "1,3-5,8,9");
        assert_eq!(parsed.total(), 6);
        assert!(parsed.contains(4));
        assert!(!parsed.contains(2));
        assert_eq!(Intervals::parse("0,1,2", 5).to_string(), "0-2");
        assert_eq!(Intervals::parse("0-1", 5).to_string(), "0,1");
        assert_eq!(parsed.iter().collect::<Vec<_>>(), vec![1, 3, 4, 5, 8, 9]);
    }
}
