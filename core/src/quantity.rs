//! `resource.Quantity`: the numbers of resource requests, limits and quotas (`500m`, `1Gi`,
//! `2e3`), parsed exactly as kube-apiserver does, compared and added without rounding.

use std::cmp::Ordering;

/// A `resource.Quantity`, exactly: `mantissa × 10^exponent` (binary suffixes multiplied in).
#[derive(Clone, Debug)]
pub struct Quantity {
    mantissa: i128,
    exponent: i32,
}

impl Quantity {
    /// kube's quantity grammar: a signed decimal number, then a binary suffix (`Ki`..`Ei`),
    /// a decimal one (`n`, `u`, `m`, `k`, `M`..`E`) or a decimal exponent (`e3`, `E-2`).
    pub fn parse(text: &str) -> Option<Quantity> {
        let (negative, body) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (number, suffix) = body.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && fraction.is_empty() || fraction.contains('.') {
            return None;
        }
        let digits = format!("{whole}{fraction}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 30 {
            return None;
        }
        let mut mantissa: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().ok()?
        };
        let mut exponent = -(fraction.len() as i32);
        let binary = |power: u32| -> Option<i128> { 1i128.checked_shl(10 * power) };
        match suffix {
            "" => {}
            "Ki" => mantissa = mantissa.checked_mul(binary(1)?)?,
            "Mi" => mantissa = mantissa.checked_mul(binary(2)?)?,
            "Gi" => mantissa = mantissa.checked_mul(binary(3)?)?,
            "Ti" => mantissa = mantissa.checked_mul(binary(4)?)?,
            "Pi" => mantissa = mantissa.checked_mul(binary(5)?)?,
            "Ei" => mantissa = mantissa.checked_mul(binary(6)?)?,
            "n" => exponent -= 9,
            "u" => exponent -= 6,
            "m" => exponent -= 3,
            "k" => exponent += 3,
            "M" => exponent += 6,
            "G" => exponent += 9,
            "T" => exponent += 12,
            "P" => exponent += 15,
            "E" => exponent += 18,
            s if s.starts_with(['e', 'E']) => {
                let power: i32 = s[1..].parse().ok()?;
                if !s[1..]
                    .trim_start_matches(['+', '-'])
                    .bytes()
                    .all(|b| b.is_ascii_digit())
                {
                    return None;
                }
                exponent = exponent.checked_add(power)?;
            }
            _ => return None,
        }
        Some(Quantity {
            mantissa: if negative { -mantissa } else { mantissa },
            exponent,
        })
    }

    fn aligned(&self, other: &Quantity) -> Option<(i128, i128, i32)> {
        let exponent = self.exponent.min(other.exponent);
        let scale = |q: &Quantity| -> Option<i128> {
            let shift = u32::try_from(q.exponent - exponent).ok()?;
            q.mantissa.checked_mul(10i128.checked_pow(shift)?)
        };
        Some((scale(self)?, scale(other)?, exponent))
    }

    pub fn compare(&self, other: &Quantity) -> Ordering {
        match self.aligned(other) {
            Some((a, b, _)) => a.cmp(&b),
            None => self.as_f64().total_cmp(&other.as_f64()),
        }
    }

    /// The sum (or, with `negate`, the difference); `None` on overflow.
    pub fn combine(&self, other: &Quantity, negate: bool) -> Option<Quantity> {
        let (a, b, exponent) = self.aligned(other)?;
        let mantissa = if negate {
            a.checked_sub(b)?
        } else {
            a.checked_add(b)?
        };
        Some(Quantity { mantissa, exponent })
    }

    /// The value as an integer, when it is one.
    pub fn as_i64(&self) -> Option<i64> {
        let value = if self.exponent >= 0 {
            self.mantissa
                .checked_mul(10i128.checked_pow(self.exponent as u32)?)?
        } else {
            let divisor = 10i128.checked_pow(self.exponent.unsigned_abs())?;
            if self.mantissa % divisor != 0 {
                return None;
            }
            self.mantissa / divisor
        };
        i64::try_from(value).ok()
    }

    pub fn as_f64(&self) -> f64 {
        self.mantissa as f64 * 10f64.powi(self.exponent)
    }
}

impl Quantity {
    /// -1, 0 or 1 (Go's `Quantity.Sign`).
    pub fn sign(&self) -> i64 {
        self.mantissa.signum() as i64
    }
}

impl From<i64> for Quantity {
    fn from(value: i64) -> Quantity {
        Quantity {
            mantissa: i128::from(value),
            exponent: 0,
        }
    }
}
